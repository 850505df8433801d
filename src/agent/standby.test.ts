/**
 * The peer directory: registration, liveness through unix sockets, stale-socket clean-up after a
 * SIGKILL, scopes, the "leave, then look" rule that makes the last instance tear down, sync
 * requests, and the standby's wait for its local IPs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../plugin.ts';
import {
  PeerErrorCode,
  PeerError,
  PeerRegistry,
  formatPeerName,
  parsePeerName,
  peerScope,
  probePeer,
  unboundableIps,
  waitForLocalIps,
  type PeerRole,
} from './standby.ts';

function captureLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(`[INFO] ${m}`), warn: (m) => lines.push(`[WARNING] ${m}`), error: (m) => lines.push(`[ERROR] ${m}`) };
}

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nld-peers-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const SCOPE = peerScope('net:[1]', ['169.254.20.10', '198.18.0.10'], 53);

async function join_(t: { after(fn: () => Promise<void>): void }, dir: string, role: PeerRole, scope = SCOPE, log = captureLog()) {
  const reg = await PeerRegistry.join({ dir, role, scope, version: 'v-test', log, probeTimeoutMs: 500 });
  t.after(() => reg.leave());
  return reg;
}

test('peer names and scopes', () => {
  const n = { role: 'standby' as const, scope: '0a1b2c3d', pid: 42, nonce: 'deadbeef' };
  assert.equal(formatPeerName(n), 'standby-0a1b2c3d-42-deadbeef.sock');
  assert.deepEqual(parsePeerName('standby-0a1b2c3d-42-deadbeef.sock'), n);
  for (const bad of [
    'standby-0a1b2c3d-42-deadbeef.sock.tmp',
    '.standby-0a1b2c3d-42-deadbeef.sock.tmp',
    'other-0a1b2c3d-42-deadbeef.sock',
    'primary-0A1B2C3D-42-deadbeef.sock',
    'primary-0a1b2c3d--deadbeef.sock',
    'README',
  ]) {
    assert.equal(parsePeerName(bad), undefined, bad);
  }
  assert.match(SCOPE, /^[0-9a-f]{8}$/);
  assert.equal(peerScope('net:[1]', ['198.18.0.10', '169.254.20.10'], 53), SCOPE, 'the order of -localip does not matter');
  assert.notEqual(peerScope('net:[2]', ['169.254.20.10', '198.18.0.10'], 53), SCOPE, 'another network namespace');
  assert.notEqual(peerScope('net:[1]', ['169.254.20.10'], 53), SCOPE, 'other addresses');
  assert.notEqual(peerScope('net:[1]', ['169.254.20.10', '198.18.0.10'], 5353), SCOPE, 'another port');
});

test('a registered instance answers its status; leaving removes its socket', async (t) => {
  const dir = join(await tempDir(t), 'run', 'node-local-dns');
  const log = captureLog();
  const reg = await join_(t, dir, 'primary', SCOPE, log);
  assert.equal(reg.path, join(dir, `${reg.id}.sock`));
  assert.deepEqual(await readdir(dir), [`${reg.id}.sock`], 'no temporary name left behind');
  const r = await probePeer(reg.path);
  assert.equal(r.state, 'alive');
  assert.ok(r.state === 'alive' && r.status);
  assert.equal(r.status.role, 'primary');
  assert.equal(r.status.pid, process.pid);
  assert.equal(r.status.scope, SCOPE);
  assert.equal(r.status.phase, 'starting');
  assert.equal(r.status.version, 'v-test');
  reg.phase = 'serving';
  const r2 = await probePeer(reg.path);
  assert.equal(r2.state === 'alive' && r2.status?.phase, 'serving');

  await reg.leave();
  await reg.leave();
  assert.deepEqual(await readdir(dir), []);
  assert.equal((await probePeer(reg.path)).state, 'gone');
});

test('peers of the same scope see each other; the last to leave sees nobody', async (t) => {
  const dir = await tempDir(t);
  const a = await join_(t, dir, 'primary');
  const b = await join_(t, dir, 'standby');
  const other = await join_(t, dir, 'primary', peerScope('net:[9]', ['169.254.20.10'], 53));

  const fromA = await a.peers();
  assert.deepEqual(
    fromA.map((p) => [p.name.role, p.status?.id]),
    [['standby', b.id]],
  );
  assert.deepEqual(
    (await b.peers()).map((p) => p.status?.id),
    [a.id],
  );
  assert.deepEqual(await other.peers(), [], 'another scope is not a peer');

  // Both stop "at once": each leaves, then looks. Whatever the interleaving, the one that looks
  // last finds nobody and tears down.
  await a.leave();
  await b.leave();
  assert.deepEqual(await a.peers(), []);
  assert.deepEqual(await b.peers(), []);
  assert.ok(existsSync(other.path));
});

test('the socket of a SIGKILLed instance is stale: ignored and removed', async (t) => {
  const dir = await tempDir(t);
  const log = captureLog();
  const me = await join_(t, dir, 'standby', SCOPE, log);
  const deadPath = join(dir, formatPeerName({ role: 'primary', scope: SCOPE, pid: 999999, nonce: '0badc0de' }));
  const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(deadPath)}, () => console.log('up'))`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => {
    child.kill('SIGKILL');
  });
  await new Promise((r) => child.stdout!.once('data', r));
  const live = await me.peers();
  assert.deepEqual(
    live.map((p) => p.name.pid),
    [999999],
    'alive while its process runs',
  );
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.ok(existsSync(deadPath), 'a killed process leaves its socket file');
  assert.equal((await probePeer(deadPath)).state, 'stale');
  assert.deepEqual(await me.peers(), []);
  assert.equal(existsSync(deadPath), false);
  assert.ok(log.lines.some((l) => l.includes(`Removed stale peer socket ${deadPath}`)));

  // A new instance sweeps stale sockets of any scope when it joins.
  const foreign = join(dir, formatPeerName({ role: 'standby', scope: 'ffffffff', pid: 7, nonce: '00000000' }));
  const c2 = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(foreign)}, () => console.log('up'))`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((r) => c2.stdout!.once('data', r));
  c2.kill('SIGKILL');
  await new Promise((r) => c2.once('exit', r));
  await join_(t, dir, 'primary');
  assert.equal(existsSync(foreign), false);
});

test('files that are not peer sockets are left alone and are not peers', async (t) => {
  const dir = await tempDir(t);
  const me = await join_(t, dir, 'primary');
  const fake = join(dir, formatPeerName({ role: 'standby', scope: SCOPE, pid: 1, nonce: '12345678' }));
  await writeFile(fake, 'not a socket');
  await writeFile(join(dir, 'notes.txt'), 'x');
  assert.deepEqual(await me.peers(), []);
  assert.ok(existsSync(fake));
  assert.ok(existsSync(join(dir, 'notes.txt')));
});

test('a sync request reaches the primary, also when it arrives before the handler is set', async (t) => {
  const dir = await tempDir(t);
  const primary = await join_(t, dir, 'primary');
  const leaving = await join_(t, dir, 'standby');
  const [p] = await leaving.peers();
  assert.ok(p);
  assert.equal(await leaving.requestSync(p), true);
  let synced = 0;
  primary.onSync(() => synced++);
  assert.equal(synced, 1, 'the early request is delivered when the handler is set');
  assert.equal(await leaving.requestSync(p), true);
  assert.equal(synced, 2);
});

test('joining: every live peer of the scope hears the new instance and its role before answering', async (t) => {
  const dir = await tempDir(t);
  const older = await join_(t, dir, 'primary');
  const standby = await join_(t, dir, 'standby');
  const heard: string[] = [];
  older.onJoining((role) => heard.push(`primary heard ${role}`));
  standby.onJoining((role) => heard.push(`standby heard ${role}`));
  const newer = await join_(t, dir, 'primary');
  const found = await newer.announceJoining();
  assert.deepEqual(found.map((p) => p.name.role).sort(), ['primary', 'standby']);
  assert.deepEqual(heard.sort(), ['primary heard primary', 'standby heard primary']);
  // An unknown role in the line is answered as `status` and reported to nobody.
  assert.equal((await probePeer(older.path, 'joining other' as 'joining primary')).state, 'alive');
  assert.equal(heard.length, 2);
});

test('malformed requests get the status line and never crash the server', async (t) => {
  const dir = await tempDir(t);
  const reg = await join_(t, dir, 'standby');
  for (const payload of ['x'.repeat(1000), '\n', '\u0000\u0001garbage\n', 'sync-not\n']) {
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect({ path: reg.path });
      let buf = '';
      s.on('data', (d) => (buf += d.toString()));
      s.on('end', () => resolve(buf));
      s.on('error', reject);
      s.write(payload);
    });
    assert.equal(JSON.parse(answer.trim()).id, reg.id, JSON.stringify(payload));
  }
  assert.equal((await probePeer(reg.path)).state, 'alive');
});

test('an unusable peer directory is a PeerError', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'file'), '');
  await assert.rejects(
    PeerRegistry.join({ dir: join(dir, 'file', 'sub'), role: 'standby', scope: SCOPE, version: 'v', log: captureLog() }),
    (e: unknown) => e instanceof PeerError && e.code === PeerErrorCode.DIR,
  );
  await assert.rejects(
    PeerRegistry.join({ dir: join(dir, 'x'.repeat(120)), role: 'standby', scope: SCOPE, version: 'v', log: captureLog() }),
    (e: unknown) => e instanceof PeerError && /too long/.test(e.message),
  );
});

test('waitForLocalIps: returns once bindable, waits otherwise, and can be aborted', async () => {
  const log = captureLog();
  assert.deepEqual(await unboundableIps(['127.0.0.1']), []);
  // An address of the benchmarking range (RFC 2544, 198.18.0.0/15) no interface here holds; binding sends nothing.
  assert.deepEqual(await unboundableIps(['127.0.0.1', '198.18.255.254']), ['198.18.255.254']);
  await waitForLocalIps(['127.0.0.1'], { log });
  assert.deepEqual(log.lines, []);

  const ac = new AbortController();
  const waiting = waitForLocalIps(['198.18.255.254'], { log, signal: ac.signal, pollMs: 20 });
  await new Promise((r) => setTimeout(r, 100));
  ac.abort();
  await assert.rejects(waiting, (e: unknown) => e instanceof PeerError && e.code === PeerErrorCode.ABORTED);
  assert.deepEqual(log.lines, ['[INFO] Waiting for 198.18.255.254 to be set up by the primary before serving']);
});

test('a peer streaming 10 MB of garbage is answered and cut off after the request bound; the socket keeps serving', async (t) => {
  const dir = await tempDir(t);
  const reg = await join_(t, dir, 'primary');
  const total = 10 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  const { accepted, answer } = await new Promise<{ accepted: number; answer: string }>((resolve) => {
    // allowHalfOpen: a hostile peer goes on writing after the server's answer and FIN.
    const s = connect({ path: reg.path, allowHalfOpen: true });
    let answer = '';
    let sent = 0;
    s.on('data', (d) => (answer += d.toString()));
    s.on('error', () => undefined);
    s.on('close', () => resolve({ accepted: s.bytesWritten, answer }));
    const pump = (): void => {
      while (sent < total && !s.destroyed) {
        sent += chunk.length;
        if (!s.write(chunk)) {
          s.once('drain', pump);
          return;
        }
      }
      if (sent >= total) s.end();
    };
    s.on('connect', pump);
  });
  assert.ok(accepted < 2 * 1024 * 1024, `the peer socket took ${accepted} bytes of garbage`);
  assert.equal(JSON.parse(answer.trim()).id, reg.id);
  assert.equal((await probePeer(reg.path)).state, 'alive');
});
