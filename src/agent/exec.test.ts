import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CommandError, createExecRunner, execRunner, type CommandResult } from './exec.ts';

/** `p`, or 'pending' when it has not settled within ms (a hung runner shows as 'pending'). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<'pending'>((r) => (t = setTimeout(() => r('pending'), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

test('exec: exit status and output of a program', async () => {
  assert.deepEqual(await execRunner('sh', ['-c', 'echo out; echo err >&2; exit 3']), { code: 3, stdout: 'out\n', stderr: 'err\n' });
  assert.deepEqual(await execRunner('true', []), { code: 0, stdout: '', stderr: '' });
});

test('exec: a program that does not exist rejects with CommandError (ENOENT), never throws', async () => {
  const err = await execRunner('/nonexistent/iptables', ['-L']).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(err instanceof CommandError, String(err));
  assert.equal(err.code, 'ERR_COMMAND');
  assert.match(err.message, /^cannot run \/nonexistent\/iptables: .*ENOENT/);
});

test('exec: a child that exits while a grandchild keeps its output open settles at its exit', { timeout: 30_000 }, async () => {
  // The shell exits at once; `sleep` inherits its stdout and stderr and holds them for 60 s.
  // execFile waits for the pipes to close (and its timeout only signals the shell, long gone).
  const r = await within(execRunner('sh', ['-c', 'sleep 60 & echo started $!; exit 4']), 10_000);
  const pid = /started (\d+)/.exec((r as CommandResult).stdout ?? '')?.[1];
  if (pid !== undefined) process.kill(Number(pid), 'SIGKILL');
  assert.notEqual(r, 'pending', "the runner hung on the grandchild's pipes");
  assert.equal((r as CommandResult).code, 4);
  assert.match((r as CommandResult).stdout, /^started \d+\n$/);
});

test('exec: spawn failing with EMFILE (descriptors exhausted) rejects with CommandError, the process lives on', { timeout: 30_000 }, async () => {
  // A child Node.js process whose descriptor limit is 64 fills its table, then runs a command.
  const script = `
    import { openSync } from 'node:fs';
    import { execRunner } from ${JSON.stringify(fileURLToPath(new URL('./exec.ts', import.meta.url)))};
    const fds = [];
    try { for (;;) fds.push(openSync('/dev/null', 'r')); } catch {}
    const r = await execRunner('true', []).then((v) => ({ resolved: v }), (e) => ({ rejected: e.name, code: e.code, message: e.message }));
    process.stdout.write(JSON.stringify(r));
  `;
  const out = await new Promise<string>((resolve, reject) =>
    execFile('prlimit', ['--nofile=64:64', process.execPath, '--input-type=module', '-e', script], { timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
  const r = JSON.parse(out) as { rejected?: string; code?: string; message?: string };
  assert.equal(r.rejected, 'CommandError', out);
  assert.equal(r.code, 'ERR_COMMAND');
  assert.match(r.message!, /EMFILE/);
});

test('exec: a child that ignores SIGTERM past the timeout is killed with SIGKILL and the call settles', { timeout: 30_000 }, async () => {
  const run = createExecRunner({ timeoutMs: 200, killGraceMs: 300 });
  const r = await within(run('sh', ['-c', 'trap "" TERM; exec sleep 30']), 10_000);
  assert.notEqual(r, 'pending');
  assert.deepEqual(r, { code: -1, stdout: '', stderr: 'killed by SIGKILL' });
});

test('exec: output beyond the bound ends the command with CommandError', { timeout: 30_000 }, async () => {
  const run = createExecRunner({ maxOutputBytes: 64 * 1024 });
  const err = await run('sh', ['-c', 'exec yes']).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(err instanceof CommandError);
  assert.match(err.message, /output larger than 65536 bytes/);
});

test("exec: input is written to the child's stdin and closed; without it stdin is empty", async () => {
  assert.deepEqual(await execRunner('sh', ['-c', 'cat; echo end'], { input: 'line 1\nline 2\n' }), { code: 0, stdout: 'line 1\nline 2\nend\n', stderr: '' });
  assert.deepEqual(await execRunner('sh', ['-c', 'cat; echo end'], { input: '' }), { code: 0, stdout: 'end\n', stderr: '' });
  assert.deepEqual(await execRunner('sh', ['-c', 'cat; echo end']), { code: 0, stdout: 'end\n', stderr: '' });
});

test('exec: a child that exits without reading a large input reports its exit status (no EPIPE escapes)', async () => {
  const r = await execRunner('sh', ['-c', 'exit 7'], { input: 'x'.repeat(4 << 20) });
  assert.equal(r.code, 7);
});
