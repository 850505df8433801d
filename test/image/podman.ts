/**
 * Podman (Debian's, root, default storage) for the image test: run a podman command, build with
 * `--isolation chroot` (the OCI runtime cannot start containers in this sandbox), create and
 * mount a container's filesystem, size an image, and remove what a crashed earlier run left.
 *
 * Names the test creates carry its process id (`localhost/node-local-dns-test-image:<pid>`,
 * containers `nld-image-<pid>-<n>`), so a sweep removes only what belongs to dead test processes.
 * The stand-in base (base.ts) is the one thing kept between runs.
 */
import { spawn } from 'node:child_process';
import { createGzip } from 'node:zlib';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs `file args` and collects its output; never throws for a non-zero status. */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr: signal === null ? stderr : `${stderr}\n(killed by ${signal})` });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Runs and throws with stderr when the command fails; returns stdout. */
export async function must(file: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.code}):\n${r.stderr.trim()}`);
  return r.stdout;
}

export function podman(args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return must('podman', args, opts);
}

export async function imageExists(ref: string): Promise<boolean> {
  return (await run('podman', ['image', 'exists', ref])).code === 0;
}

/** The repository's tags, e.g. ['localhost/x:1', ...]. */
export async function imageTags(repository: string): Promise<string[]> {
  const out = await podman(['images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', `reference=${repository}`]);
  return out.split('\n').filter((l) => l.startsWith(`${repository}:`));
}

export interface ImageConfig {
  /** Uncompressed size of all layers, bytes (what `podman images` shows). */
  sizeBytes: number;
  env: string[];
  workingDir: string;
  entrypoint: string[];
  cmd: string[];
}

export async function inspectImage(ref: string): Promise<ImageConfig> {
  const [info] = JSON.parse(await podman(['image', 'inspect', ref])) as Array<{
    Size: number;
    Config: { Env?: string[]; WorkingDir?: string; Entrypoint?: string[]; Cmd?: string[] };
  }>;
  if (info === undefined) throw new Error(`podman image inspect ${ref}: no image`);
  return {
    sizeBytes: info.Size,
    env: info.Config.Env ?? [],
    workingDir: info.Config.WorkingDir ?? '/',
    entrypoint: info.Config.Entrypoint ?? [],
    cmd: info.Config.Cmd ?? [],
  };
}

/**
 * Bytes of `podman save` (docker-archive: every layer as a tar) after gzip -6, as a registry
 * stores layers: an estimate of the pull size within a few per cent.
 */
export function gzippedSaveBytes(ref: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('podman', ['save', '--format', 'docker-archive', ref], { stdio: ['ignore', 'pipe', 'pipe'] });
    const gzip = createGzip({ level: 6 });
    let bytes = 0;
    let stderr = '';
    gzip.on('data', (b: Buffer) => (bytes += b.length));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.pipe(gzip);
    child.once('error', reject);
    let exit: number | null = null;
    let gzipDone = false;
    const settle = (): void => {
      if (exit === null || !gzipDone) return;
      if (exit !== 0) reject(new Error(`podman save ${ref} failed (${exit}): ${stderr.trim()}`));
      else resolve(bytes);
    };
    child.once('close', (code) => {
      exit = code ?? -1;
      settle();
    });
    gzip.once('end', () => {
      gzipDone = true;
      settle();
    });
  });
}

/** A created (never started) container and its filesystem, mounted read-write on the host. */
export interface MountedContainer {
  id: string;
  name: string;
  /** Host path of the container's root filesystem. */
  root: string;
  remove(): Promise<void>;
}

let containerCounter = 0;

export async function createMounted(image: string): Promise<MountedContainer> {
  const name = `nld-image-${process.pid}-${++containerCounter}`;
  const id = (await podman(['create', '--name', name, image])).trim();
  const remove = async (): Promise<void> => {
    await run('podman', ['umount', id]);
    await run('podman', ['rm', '--force', id]);
  };
  try {
    const root = (await podman(['mount', id])).trim();
    return { id, name, root, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Removes containers and images of earlier test processes that are gone. */
export async function sweepStale(imageRepository: string): Promise<void> {
  const names = await podman(['ps', '--all', '--format', '{{.Names}}']);
  for (const n of names.split('\n')) {
    const m = /^nld-image-(\d+)-\d+$/.exec(n);
    if (m !== null && !pidAlive(Number(m[1]))) {
      await run('podman', ['umount', n]);
      await run('podman', ['rm', '--force', n]);
    }
  }
  for (const tag of await imageTags(imageRepository)) {
    const pid = Number(tag.slice(imageRepository.length + 1));
    if (Number.isInteger(pid) && !pidAlive(pid)) await run('podman', ['rmi', '--force', tag]);
  }
}
