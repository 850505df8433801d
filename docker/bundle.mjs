// The image's production bundle (Dockerfile, stage `bundle`): bin/node-local-dns.js and every
// module it imports, as ES modules built by esbuild, into OUTDIR:
//
//   OUTDIR/bin/node-local-dns.js   the entry (same shebang and compile-cache set-up as bin/)
//   OUTDIR/dist/*.js               one chunk per lazily imported module group (the 14 on-demand
//                                  plugins, agent mode, the set-up metrics listener ...) and the
//                                  code they share, so a lazy import() stays lazy
//   OUTDIR/dist/worker.js          the worker script (-workers N)
//
// Why (bench/PROFILE.md, Footprint): ~95 type-stripped TypeScript files at start-up hold their
// comments and whitespace in the V8 heap and page in the compilers while module resolution runs;
// the bundle idles ~9 MiB lower and starts faster. `npm start` and the tests run src/ directly.
//
// Two source rewrites, both checked here:
//  - `import.meta.url` of a src/ module becomes the URL its source file would have beside
//    OUTDIR (new URL('../src/x/y.ts', import.meta.url)), so paths derived from it (the addon
//    ../../build/Release/udp.node, ../package.json) resolve as from src/; the worker script URL
//    (src/workers/pool.ts: new URL('./worker.ts', import.meta.url)) becomes ./worker.js.
//  - `import { x } from 'node:fs'` reads x from process.getBuiltinModule('node:fs'): an ES import
//    of a builtin reads all of its exports, and node:fs's `promises`, ReadStream ... getters load
//    fs/promises, readline and the fs streams that nothing here uses.
//
//   node docker/bundle.mjs OUTDIR
import { readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outArg = process.argv[2];
if (outArg === undefined) {
  console.error('usage: node docker/bundle.mjs OUTDIR');
  process.exit(2);
}
const outdir = resolve(outArg);
const chunkDir = join(outdir, 'dist');
const WORKER_URL = "new URL('./worker.ts', import.meta.url)";
const WORKER_OWNER = join(root, 'src/workers/pool.ts');

/** Files whose import.meta.url was rewritten (they must land in OUTDIR/dist, checked below). */
const rewritten = new Set();

const sourceLocations = {
  name: 'source-locations',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'ts' };
      // OUTDIR mirrors the source tree (OUTDIR/bin ~ bin/, OUTDIR/dist beside where src/ was).
      const here = `new URL(${JSON.stringify(relative(join(root, 'dist'), args.path))}, import.meta.url).href`;
      const parts = text.split(WORKER_URL);
      if (args.path === WORKER_OWNER && parts.length !== 2) throw new Error(`${args.path}: expected one ${WORKER_URL}`);
      if (args.path !== WORKER_OWNER && parts.length !== 1) throw new Error(`${args.path}: a worker script URL outside src/workers/pool.ts`);
      rewritten.add(relative(root, args.path));
      return { contents: parts.map((p) => p.replaceAll('import.meta.url', here)).join("new URL('./worker.js', import.meta.url)"), loader: 'ts' };
    });
  },
};

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const builtinsByGet = {
  name: 'builtins-by-get',
  setup(build) {
    build.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'builtin' }));
    build.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => {
      const mod = process.getBuiltinModule(args.path);
      if (mod === undefined) throw new Error(`${args.path} is not a builtin module of Node.js ${process.version}`);
      // Object.keys does not run getters; each export is read only if something imports it
      // (esbuild drops the unused pure calls).
      const lines = [`const m = process.getBuiltinModule(${JSON.stringify(args.path)});`, 'const get = (k) => m[k];', 'export default m;'];
      for (const k of Object.keys(mod)) if (IDENTIFIER.test(k) && k !== 'default') lines.push(`export const ${k} = /* @__PURE__ */ get(${JSON.stringify(k)});`);
      return { contents: lines.join('\n'), loader: 'js' };
    });
  },
};

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { 'bin/node-local-dns': 'bin/node-local-dns.js', 'dist/worker': 'src/workers/worker.ts' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  outdir,
  chunkNames: 'dist/[name]-[hash]',
  legalComments: 'none',
  plugins: [sourceLocations, builtinsByGet],
  metafile: true,
  logLevel: 'warning',
});

// Every module whose import.meta.url was rewritten must sit in a chunk under OUTDIR/dist.
let bytes = 0;
for (const [out, info] of Object.entries(result.metafile.outputs)) {
  bytes += info.bytes;
  for (const input of Object.keys(info.inputs)) {
    if (rewritten.has(input) && dirname(resolve(root, out)) !== chunkDir) throw new Error(`${input} landed in ${out}, not in ${chunkDir}`);
  }
}
if (!rewritten.has('src/workers/pool.ts')) throw new Error('src/workers/pool.ts (the worker script URL) was not bundled');
console.log(`node-local-dns bundle: ${Object.keys(result.metafile.outputs).length} files, ${bytes} bytes in ${outdir}`);
