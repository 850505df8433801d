import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeConfigMapVolume } from '../../test/lib/configmap-volume.ts';
import {
  ConfigMapError,
  ConfigWatcher,
  fileVersion,
  isDns1123Subdomain,
  isNameserverAddress,
  loadKubeDnsConfig,
  MAX_TEMPLATE_BYTES,
  parseKubeDnsConfig,
  readConfigDir,
} from './configmap.ts';

test('DNS-1123 subdomain check', () => {
  for (const ok of ['acme.local', 'a', 'a-b.c1', '0.example', 'x'.repeat(63) + '.y']) assert.ok(isDns1123Subdomain(ok), ok);
  for (const bad of ['', 'Acme.local', 'acme.local.', '-a.b', 'a-.b', 'a..b', 'a_b', 'a b', 'x'.repeat(254)]) {
    assert.ok(!isDns1123Subdomain(bad), bad);
  }
});

test('nameserver address check', () => {
  for (const ok of ['1.2.3.4', '1.2.3.4:53', '1.2.3.4:65535', 'fd00::1', '[fd00::1]:53', '::1']) assert.ok(isNameserverAddress(ok), ok);
  for (const bad of ['', 'dns.example', 'dns.example:53', '1.2.3.4:0', '1.2.3.4:65536', '1.2.3.4:x', '[1.2.3.4]:53', 'fd00::1:53:x', '[fd00::1]', '1.2.3']) {
    assert.ok(!isNameserverAddress(bad), bad);
  }
});

test('parseKubeDnsConfig accepts valid data', () => {
  const c = parseKubeDnsConfig({
    stubDomains: '{"acme.local": ["1.2.3.4"], "corp.example": ["198.18.0.1:5353", "[fd00::1]:53"]}',
    upstreamNameservers: '["8.8.8.8", "8.8.4.4:53"]',
    federations: 'ignored',
    other: 'ignored',
  });
  assert.deepEqual(
    [...c.stubDomains.entries()],
    [
      ['acme.local', ['1.2.3.4']],
      ['corp.example', ['198.18.0.1:5353', '[fd00::1]:53']],
    ],
  );
  assert.deepEqual(c.upstreamNameservers, ['8.8.8.8', '8.8.4.4:53']);
  const empty = parseKubeDnsConfig(new Map());
  assert.equal(empty.stubDomains.size, 0);
  assert.deepEqual(empty.upstreamNameservers, []);
  assert.equal(parseKubeDnsConfig({ stubDomains: 'null', upstreamNameservers: 'null' }).stubDomains.size, 0);
});

test('parseKubeDnsConfig rejects invalid data with ConfigMapError naming the key', () => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ stubDomains: '{' }, 'stubDomains', /invalid JSON in stubDomains/],
    [{ stubDomains: '[]' }, 'stubDomains', /must be a JSON object/],
    [{ stubDomains: '{"Acme.local": ["1.2.3.4"]}' }, 'stubDomains', /invalid domain name: "Acme.local"/],
    [{ stubDomains: '{"acme.local": "1.2.3.4"}' }, 'stubDomains', /must be a JSON list/],
    [{ stubDomains: '{"acme.local": []}' }, 'stubDomains', /has no nameservers/],
    [{ stubDomains: '{"acme.local": null}' }, 'stubDomains', /has no nameservers/],
    [{ stubDomains: '{"acme.local": ["ns.acme.local"]}' }, 'stubDomains', /invalid nameserver "ns.acme.local" for stub domain acme.local/],
    [{ stubDomains: '{"acme.local": ["1.2.3.4:99999"]}' }, 'stubDomains', /invalid nameserver/],
    [{ upstreamNameservers: '"8.8.8.8"' }, 'upstreamNameservers', /must be a JSON list/],
    [{ upstreamNameservers: '["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4"]' }, 'upstreamNameservers', /more than 3 entries/],
    [{ upstreamNameservers: '["resolver.example"]' }, 'upstreamNameservers', /invalid upstream nameserver "resolver.example"/],
    [{ upstreamNameservers: '[1]' }, 'upstreamNameservers', /must be a JSON list of strings/],
  ];
  for (const [data, key, re] of cases) {
    assert.throws(
      () => parseKubeDnsConfig(data),
      (e: unknown) => e instanceof ConfigMapError && e.code === 'ERR_CONFIGMAP' && e.key === key && re.test(e.message),
      JSON.stringify(data),
    );
  }
});

test('readConfigDir reads a kubelet-style ConfigMap volume and versions it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nld-cm-'));
  t.after(() => rm(dir, { recursive: true, force: true }));

  const missing = await readConfigDir(join(dir, 'absent'));
  assert.deepEqual({ exists: missing.exists, version: missing.version, n: missing.files.size }, { exists: false, version: '', n: 0 });
  const emptyDir = await readConfigDir(dir);
  assert.deepEqual({ exists: emptyDir.exists, version: emptyDir.version }, { exists: true, version: '' });

  await writeConfigMapVolume(dir, { upstreamNameservers: '["198.18.0.1"]' });
  const s1 = await readConfigDir(dir);
  assert.deepEqual([...s1.files.keys()], ['upstreamNameservers']);
  assert.notEqual(s1.version, '');
  assert.equal((await readConfigDir(dir)).version, s1.version);

  await writeConfigMapVolume(dir, { upstreamNameservers: '["198.18.0.2"]' });
  const s2 = await readConfigDir(dir);
  assert.notEqual(s2.version, s1.version);
  const loaded = await loadKubeDnsConfig(dir);
  assert.deepEqual(loaded.config.upstreamNameservers, ['198.18.0.2']);

  await writeFile(join(dir, 'bad'), Buffer.from([0xff, 0xfe]));
  await assert.rejects(readConfigDir(dir), (e: unknown) => e instanceof ConfigMapError && /non-utf8/.test(e.message));
  await rm(join(dir, 'bad'));
  await writeFile(join(dir, 'notadir'), 'x');
  await assert.rejects(readConfigDir(join(dir, 'notadir')), (e: unknown) => e instanceof ConfigMapError && /not a directory/.test(e.message));
});

test('ConfigWatcher calls back once per change, for ..data swaps and plain files', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'nld-watch-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const cm = join(root, 'kube-dns');
  const base = join(root, 'coredns');
  await mkdir(cm);
  await mkdir(base);
  await writeFile(join(base, 'Corefile.base'), 'a');

  const changes: string[] = [];
  let notify: (() => void) | undefined;
  const w = new ConfigWatcher(
    [
      { name: 'kube-dns', dir: cm, version: async () => (await readConfigDir(cm)).version },
      { name: 'base', dir: base, version: () => fileVersion(join(base, 'Corefile.base')) },
    ],
    {
      intervalMs: 60_000,
      onChange: (n) => {
        changes.push(n);
        notify?.();
      },
    },
  );
  await w.start();
  t.after(() => w.stop());

  await w.poll();
  assert.deepEqual(changes, [], 'no callback for the initial state');

  // fs.watch reacts without waiting for the (long) poll period.
  const seen = new Promise<void>((resolve) => (notify = resolve));
  await writeConfigMapVolume(cm, { stubDomains: '{}' });
  await Promise.race([seen, new Promise((_, rej) => setTimeout(() => rej(new Error('no fs.watch notification within 5 s')), 5000))]);
  await w.poll();
  assert.deepEqual(changes, ['kube-dns']);

  await writeFile(join(base, 'Corefile.base'), 'b');
  await w.poll();
  assert.deepEqual(changes, ['kube-dns', 'base']);

  await writeFile(join(base, 'unrelated'), 'x');
  await w.poll();
  assert.deepEqual(changes, ['kube-dns', 'base'], 'other files beside the template do not count');
});

/** `p`, or 'pending' when it has not settled within ms (a read blocked on a FIFO stays pending). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<'pending'>((r) => (t = setTimeout(() => r('pending'), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

test('readConfigDir: a FIFO in the ConfigMap directory is refused at once, not read (which blocks forever)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nlF-cm-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'upstreamNameservers'), '["198.18.0.1"]');
  execFileSync('mkfifo', [join(dir, 'stubDomains')]);
  const r = await within(
    readConfigDir(dir).then(
      () => 'read',
      (e: unknown) => e,
    ),
    5_000,
  );
  assert.notEqual(r, 'pending', 'the read blocked on the FIFO');
  assert.ok(r instanceof ConfigMapError, String(r));
  assert.equal(r.key, 'stubDomains');
  assert.match(r.message, /stubDomains: is a FIFO, not a regular file$/);
  // The template file too (the watcher versions it on every poll).
  execFileSync('mkfifo', [join(dir, 'Corefile.base')]);
  const v = await within(
    fileVersion(join(dir, 'Corefile.base')).then(
      () => 'read',
      (e: unknown) => e,
    ),
    5_000,
  );
  assert.notEqual(v, 'pending');
  assert.match(String(v), /Corefile\.base: is a FIFO, not a regular file/);
});

test('readConfigDir: more than 1 MiB in the ConfigMap directory is refused, naming the file, not quoting it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nlF-cm-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'federations'), 'x'.repeat(700 * 1024));
  await writeFile(join(dir, 'stubDomains'), 'y'.repeat(400 * 1024));
  await assert.rejects(
    readConfigDir(dir),
    (e: unknown) =>
      e instanceof ConfigMapError && e.key === 'stubDomains' && /holds more than 1048576 bytes \(at stubDomains\)$/.test(e.message) && !/yyy/.test(e.message),
  );
  await writeFile(join(dir, 'stubDomains'), '{}');
  assert.equal((await readConfigDir(dir)).files.size, 2);
  await writeFile(join(dir, 'Corefile.base'), 'z'.repeat(MAX_TEMPLATE_BYTES + 1));
  await assert.rejects(fileVersion(join(dir, 'Corefile.base')), new RegExp(`Corefile\\.base: is larger than ${MAX_TEMPLATE_BYTES} bytes$`));
});

test('ConfigWatcher: a FIFO in the watched directory is reported as an error and watching goes on', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nlF-cm-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeConfigMapVolume(dir, { upstreamNameservers: '["198.18.0.1"]' });
  const errors: string[] = [];
  let changes = 0;
  const w = new ConfigWatcher([{ name: 'kube-dns', dir, version: async () => (await readConfigDir(dir)).version }], {
    intervalMs: 60_000,
    onChange: () => void changes++,
    onError: (_n, e) => errors.push((e as Error).message),
  });
  await w.start();
  t.after(() => w.stop());
  execFileSync('mkfifo', [join(dir, 'stubDomains')]);
  assert.notEqual(await within(w.poll(), 5_000), 'pending', 'the poll blocked on the FIFO');
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /is a FIFO/);
  await rm(join(dir, 'stubDomains'));
  await writeConfigMapVolume(dir, { upstreamNameservers: '["198.18.0.2"]' });
  assert.notEqual(await within(w.poll(), 5_000), 'pending');
  assert.equal(changes, 1, 'the next change is still seen');
});
