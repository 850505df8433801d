/**
 * `npm run test:asan`: builds the UDP addon with -fsanitize=address,undefined
 * (build-asan/udp.node, native/build.mjs --asan) and runs the listener, forward and fuzz tests
 * on the batched path with it. The Node binary is not instrumented, so the ASan runtime is
 * preloaded (LD_PRELOAD of gcc's libasan.so; libubsan comes in as the addon's dependency).
 * Every process the tests start inherits the environment (agents, and the DNS servers they
 * talk to, which is harmless with detect_leaks=0; the quarantine of freed memory is cut to
 * 16 MiB, else it alone grows RSS past the flood test's bound); ASan/UBSan reports go to files under a
 * fresh directory, and any report fails the run even when the test that caused it passed.
 *
 *   node native/asan.ts [test files...]   (default: ASAN_TESTS below)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

/** Listener, forward transport (in-process and against real servers), malformed/fuzz/flood and worker tests. */
const ASAN_TESTS = [
  'src/server/udp-batched.test.ts',
  'src/server/udp-handover.test.ts',
  'src/server/udp-adopt.test.ts',
  'src/server/udp-native.test.ts',
  'src/server/tcp-adopt.test.ts',
  'src/plugins/forward/faults.test.ts',
  'src/plugins/forward/late-reply.test.ts',
  'test/fault/malformed-queries.test.ts',
  'test/fault/netns-upstream-faults.test.ts',
  'test/fault/flood.test.ts',
  'test/forward/forward.test.ts',
  'test/fuzz/wire.test.ts',
  'test/engine/cluster-zones-workers.test.ts',
];

function libasan(): string {
  const r = spawnSync(process.env.CC || 'cc', ['-print-file-name=libasan.so'], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status !== 0 || !path.startsWith('/')) throw new Error('libasan.so not found (gcc with libasan is needed: apt-get install gcc)');
  return path;
}

const build = spawnSync(process.execPath, [join(ROOT, 'native/build.mjs'), '--asan'], { cwd: ROOT, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const reports = mkdtempSync(join(tmpdir(), 'nld-asan-'));
const files = process.argv.length > 2 ? process.argv.slice(2) : ASAN_TESTS;
const t0 = performance.now();
const run = spawnSync(process.execPath, ['--test', '--test-timeout=120000', '--test-concurrency=1', ...files], {
  cwd: ROOT,
  stdio: 'inherit',
  env: {
    ...process.env,
    LD_PRELOAD: libasan(),
    ASAN_OPTIONS: `detect_leaks=0:halt_on_error=1:quarantine_size_mb=16:log_path=${join(reports, 'asan')}`,
    UBSAN_OPTIONS: `halt_on_error=1:print_stacktrace=1:log_path=${join(reports, 'ubsan')}`,
    NODE_LOCAL_DNS_ADDON: join(ROOT, 'build-asan/udp.node'),
    NODE_LOCAL_DNS_UDP_IO: 'batched',
  },
});
const found = readdirSync(reports);
for (const f of found) process.stderr.write(`--- ${f}\n${readFileSync(join(reports, f), 'utf8')}\n`);
rmSync(reports, { recursive: true, force: true });
console.log(`test:asan: ${files.length} files, exit ${run.status}, ${found.length} sanitizer reports, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
process.exit(run.status !== 0 || found.length > 0 ? 1 : 0);
