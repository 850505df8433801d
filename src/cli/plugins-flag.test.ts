/**
 * `-plugins` through the real entry (bin/node-local-dns.js): CoreDNS's listing (caddy
 * DescribePlugins) of the directives compiled in, exit status 0, nothing started.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pluginNames } from '../plugins/registry.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NODE = path.join(ROOT, 'node_modules/.bin/node');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [path.join(ROOT, 'bin/node-local-dns.js'), ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? -1), stdout, stderr });
    });
  });
}

test('-plugins prints the server type, the Corefile loaders and every directive as dns.NAME, sorted, and exits 0', async () => {
  const r = await run(['-plugins']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const names = [...pluginNames()].sort();
  const want = [
    'Server types:',
    '  dns',
    '',
    'Caddyfile loaders:',
    '  flag',
    '  default',
    '',
    'Other plugins:',
    ...names.map((n) => `  dns.${n}`),
    '',
    '',
  ].join('\n');
  assert.equal(r.stdout, want);
  assert.doesNotMatch(r.stdout, /serving|\[INFO\]/, 'nothing was started');
});

test('-plugins lists every plugin node-cache compiles in (its own -plugins output, issue 13)', async () => {
  const r = await run(['--plugins']);
  assert.equal(r.code, 0);
  const listed = new Set(
    r.stdout
      .split('\n')
      .filter((l) => l.startsWith('  dns.'))
      .map((l) => l.slice(6)),
  );
  const nodeCache = [
    'bind',
    'bufsize',
    'cache',
    'debug',
    'dns64',
    'dnstap',
    'errors',
    'forward',
    'health',
    'hosts',
    'loadbalance',
    'log',
    'loop',
    'metadata',
    'pprof',
    'prometheus',
    'reload',
    'rewrite',
    'template',
    'timeouts',
    'trace',
    'whoami',
  ];
  assert.deepEqual(
    nodeCache.filter((n) => !listed.has(n)),
    [],
  );
});

test('-version takes precedence over -plugins, as in coremain', async () => {
  const r = await run(['-plugins', '-version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^node-local-dns-\S+\n/);
  assert.doesNotMatch(r.stdout, /Other plugins/);
});

test('-plugins=false runs normally (the flag is a Go bool)', async () => {
  const r = await run(['-plugins=false', '-conf', '/nonexistent/Corefile']);
  assert.notEqual(r.code, 0);
  assert.doesNotMatch(r.stdout, /Other plugins/);
});
