import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { HttpEndpoints, PluginRoute, TEXT_PLAIN, listenAddressArg, parseListenAddress, type RouteHandler } from './http-endpoints.ts';
import { HttpConnectionDrops, HttpDropReason, type HttpDropReasonValue } from './process-metrics.ts';
import { directiveOf } from '../../test/lib/metrics-testing.ts';
import { sleep, waitUntil } from '../../test/lib/net.ts';

interface Reply {
  status: number;
  type: string | undefined;
  body: string;
}

/** One GET on a fresh connection (no keep-alive holding a listener open). */
function get(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function text(body: string): RouteHandler {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': TEXT_PLAIN });
    res.end(body);
  };
}

test('addresses: Go wording for bad ones, as Corefile errors at the argument', () => {
  assert.deepEqual(parseListenAddress(':8080'), { host: '', port: 8080 });
  assert.deepEqual(parseListenAddress('[::1]:9253'), { host: '::1', port: 9253 });
  assert.throws(() => parseListenAddress('8080'), { message: 'address 8080: missing port in address', code: 'ERR_LISTEN_ADDRESS' });
  assert.throws(() => parseListenAddress('a:b:1'), { message: 'address a:b:1: too many colons in address' });
  assert.throws(() => parseListenAddress(':65536'), { message: 'address :65536: invalid port' });
  assert.throws(() => parseListenAddress(':http'), { message: 'address :http: invalid port' });

  assert.equal(listenAddressArg(directiveOf('health'), ':8080'), ':8080');
  assert.equal(listenAddressArg(directiveOf('ready 127.0.0.1:8182'), ':8181'), '127.0.0.1:8182');
  assert.throws(() => listenAddressArg(directiveOf('ready [::1]'), ':8181'), {
    message: 'Corefile:2 - Error during parsing: address [::1]: missing port in address',
  });
  assert.throws(() => listenAddressArg(directiveOf('ready :1 :2'), ':8181'), {
    message: "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after ':2'",
  });
});

test('one listener per address: paths share it, the newest route serves, 404 elsewhere, 500 on a throwing handler', async (t) => {
  const endpoints = new HttpEndpoints();
  t.after(() => endpoints.closeAll());
  const ownerA = { name: 'a' };
  const ownerB = { name: 'b' };
  const a = await endpoints.acquire('127.0.0.1:0', '/x', text('a'), ownerA);
  const anonymous = await endpoints.acquire('127.0.0.1:0', '/x', text('anonymous'));
  const b = await endpoints.acquire('127.0.0.1:0', '/x', text('b'), ownerB);
  const y = await endpoints.acquire('127.0.0.1:0', '/y', () => {
    throw new Error('broken handler');
  });
  assert.equal(anonymous.port, a.port);
  assert.equal(b.port, a.port);
  assert.equal(y.port, a.port);
  assert.deepEqual(endpoints.open(), ['127.0.0.1:0']);
  const port = a.port;

  assert.deepEqual(await get(port, '/x?q=1'), { status: 200, type: TEXT_PLAIN, body: 'b' });
  assert.deepEqual(a.holders(), [ownerA, ownerB], 'owners in acquisition order, ownerless routes left out');
  assert.deepEqual(await get(port, '/nope'), { status: 404, type: TEXT_PLAIN, body: '404 page not found\n' });
  assert.deepEqual(await get(port, '/y'), { status: 500, type: TEXT_PLAIN, body: 'broken handler\n' });

  // The newest route going away hands the path back to the one before it.
  await b.release();
  assert.equal((await get(port, '/x')).body, 'anonymous');
  assert.deepEqual(a.holders(), [ownerA]);
  await b.release();
  await anonymous.release();
  assert.equal((await get(port, '/x')).body, 'a');
});

test('a released listener stays open for the grace period (reload), closes at once on an immediate release (shutdown)', async (t) => {
  const endpoints = new HttpEndpoints({ graceMs: 60_000 });
  t.after(() => endpoints.closeAll());
  const old = await endpoints.acquire('127.0.0.1:0', '/metrics', text('old'));
  const port = old.port;
  await old.release();
  assert.deepEqual(await get(port, '/metrics'), { status: 404, type: TEXT_PLAIN, body: '404 page not found\n' }, 'still listening');
  const next = await endpoints.acquire('127.0.0.1:0', '/metrics', text('new'));
  assert.equal(next.port, port, 'the new route joins the same listener');
  assert.equal((await get(port, '/metrics')).body, 'new');
  await next.release({ immediate: true });
  assert.deepEqual(endpoints.open(), []);
  await assert.rejects(get(port, '/metrics'), { code: 'ECONNREFUSED' });
});

test('the grace period ends: an unused listener closes', async (t) => {
  const endpoints = new HttpEndpoints({ graceMs: 50 });
  t.after(() => endpoints.closeAll());
  const lease = await endpoints.acquire('127.0.0.1:0', '/health', text('OK'));
  await lease.release();
  await waitUntil(() => endpoints.open().length === 0, 'the listener to close', 5000);
  await assert.rejects(get(lease.port, '/health'), { code: 'ECONNREFUSED' });
});

/** A TCP listener bound without SO_REUSEPORT (another program, or an agent version before it). */
async function exclusiveListener(): Promise<Server> {
  const s = createServer((c) => c.destroy());
  await new Promise<void>((resolve) => s.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return s;
}

test('a port taken by a listener without SO_REUSEPORT: Go-like error, nothing left registered', async (t) => {
  const holder = await exclusiveListener();
  const endpoints = new HttpEndpoints();
  t.after(async () => {
    holder.close();
    await endpoints.closeAll();
  });
  const address = `127.0.0.1:${(holder.address() as AddressInfo).port}`;
  await assert.rejects(endpoints.acquire(address, '/ready', text('OK')), { message: `listen tcp ${address}: bind: address already in use` });
  assert.deepEqual(endpoints.open(), []);
});

test('two instances share a port (SO_REUSEPORT): both bind it, each answers for itself, the survivor takes all', async (t) => {
  // Two HttpEndpoints stand for two processes (an old and a surge pod): each binds its own socket.
  const oldInstance = new HttpEndpoints({ graceMs: 0 });
  const newInstance = new HttpEndpoints({ graceMs: 0 });
  t.after(async () => {
    await oldInstance.closeAll();
    await newInstance.closeAll();
  });
  const first = await oldInstance.acquire('127.0.0.1:0', '/ready', text('old'));
  const address = `127.0.0.1:${first.port}`;
  const second = await newInstance.acquire(address, '/ready', text('new'));
  assert.equal(second.port, first.port);
  // Fresh connections (new source ports) are spread over both sockets by the kernel's hash.
  const seen = new Set<string>();
  for (let i = 0; i < 200 && seen.size < 2; i++) seen.add((await get(first.port, '/ready')).body);
  assert.deepEqual([...seen].sort(), ['new', 'old']);
  await first.release({ immediate: true });
  for (let i = 0; i < 20; i++) assert.equal((await get(first.port, '/ready')).body, 'new');
});

test('one process never binds a port twice: an overlapping address is refused', async (t) => {
  const endpoints = new HttpEndpoints();
  t.after(() => endpoints.closeAll());
  const lease = await endpoints.acquire('127.0.0.1:0', '/health', text('OK'));
  for (const address of [`:${lease.port}`, `0.0.0.0:${lease.port}`, `localhost:${lease.port}`]) {
    await assert.rejects(endpoints.acquire(address, '/ready', text('OK')), { message: `listen tcp ${address}: bind: address already in use` });
  }
  assert.deepEqual(endpoints.open(), ['127.0.0.1:0']);
  // Another address family or host on the same port is another socket, as without SO_REUSEPORT.
  const v6 = await endpoints.acquire(`[::1]:${lease.port}`, '/ready', text('OK')).catch((err: NodeJS.ErrnoException) => err);
  if (!(v6 instanceof Error)) assert.equal(v6.port, lease.port);
});

test('PluginRoute: open and close once each, port while open, grace unless the engine is shutting down', async (t) => {
  const endpoints = new HttpEndpoints({ graceMs: 60_000 });
  t.after(() => endpoints.closeAll());
  let shuttingDown = false;
  const engine = { isShuttingDown: () => shuttingDown };
  const owner = { name: 'p' };
  const route = new PluginRoute({ endpoints, address: '127.0.0.1:0', path: '/ready', handler: text('OK'), engine, owner });
  assert.equal(route.port, 0);
  assert.equal(route.isOpen, false);
  assert.deepEqual(route.holders(), []);
  assert.equal(await route.open(), true);
  assert.equal(await route.open(), false, 'a second open is a no-op');
  const port = route.port;
  assert.notEqual(port, 0);
  assert.deepEqual(route.holders(), [owner]);
  assert.deepEqual(await get(port, '/ready'), { status: 200, type: TEXT_PLAIN, body: 'OK' });

  // Reload: closed while serving; the port stays open.
  assert.equal(await route.close(), true);
  assert.equal(await route.close(), false, 'a second close is a no-op');
  assert.equal(route.port, 0);
  assert.equal((await get(port, '/ready')).status, 404);

  // Shutdown: the last route closing closes the listener at once.
  const again = new PluginRoute({ endpoints, address: '127.0.0.1:0', path: '/ready', handler: text('again'), engine });
  await again.open();
  assert.equal(again.port, port);
  shuttingDown = true;
  await again.close();
  await assert.rejects(get(port, '/ready'), { code: 'ECONNREFUSED' });
});

/** A raw connection from `localAddress`: what it received, and whether the server closed it. */
function rawConnect(port: number, localAddress = '127.0.0.1'): Promise<{ sock: Socket; received: () => string; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: '127.0.0.1', localAddress });
    let data = '';
    let closed = false;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (data += d));
    sock.on('close', () => (closed = true));
    sock.on('error', () => {});
    sock.once('connect', () => resolve({ sock, received: () => data, closed: () => closed }));
    sock.once('error', reject);
  });
}

test('connection cap: a flood from one client evicts its own idle connections, an older client keeps its one', async (t) => {
  const drops = new HttpConnectionDrops();
  const endpoints = new HttpEndpoints({ limits: { maxConnections: 4 }, drops });
  const conns: Socket[] = [];
  t.after(async () => {
    for (const c of conns) c.destroy();
    await endpoints.closeAll();
  });
  const lease = await endpoints.acquire('127.0.0.1:0', '/health', text('OK'));
  // The probe's connection is the oldest and idle: a global LRU would close it first.
  const probe = await rawConnect(lease.port, '127.0.0.1');
  conns.push(probe.sock);
  await sleep(50);
  const flood: Awaited<ReturnType<typeof rawConnect>>[] = [];
  for (let i = 0; i < 10; i++) {
    const c = await rawConnect(lease.port, '127.0.0.2');
    conns.push(c.sock);
    flood.push(c);
  }
  await waitUntil(() => drops.count('127.0.0.1:0', HttpDropReason.EVICTED) === 7, 'seven evictions', 5000);
  await waitUntil(() => flood.filter((c) => c.closed()).length === 7, "the flood's oldest seven closed", 5000);
  assert.deepEqual(
    flood.map((c) => c.closed()),
    [true, true, true, true, true, true, true, false, false, false],
    'oldest first',
  );
  assert.equal(probe.closed(), false);
  probe.sock.write('GET /health HTTP/1.1\r\nHost: a\r\n\r\n');
  await waitUntil(() => probe.received().includes('\r\n\r\n'), 'the probe answered', 5000);
  assert.match(probe.received(), /^HTTP\/1\.1 200 OK/);
  // A fresh client still gets in.
  assert.equal((await get(lease.port, '/health')).body, 'OK');
});

test('timeouts and header size: slowloris and silent connections 408/closed, big heads 431, idle keep-alive closed uncounted', async (t) => {
  const drops = new HttpConnectionDrops();
  const limits = { headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 200, idleTimeoutMs: 1000, maxHeaderBytes: 1024 };
  const endpoints = new HttpEndpoints({ limits, drops });
  const conns: Socket[] = [];
  t.after(async () => {
    for (const c of conns) c.destroy();
    await endpoints.closeAll();
  });
  const lease = await endpoints.acquire('127.0.0.1:0', '/health', text('OK'));
  const count = (r: HttpDropReasonValue) => drops.count('127.0.0.1:0', r);

  // Slowloris: a head a byte every 50 ms (the socket is never idle), never finished.
  const slow = await rawConnect(lease.port);
  conns.push(slow.sock);
  const head = 'GET /health HTTP/1.1\r\nHost: a\r\nX-Pad: ' + 'a'.repeat(500);
  let i = 0;
  const drip = setInterval(() => !slow.closed() && i < head.length && slow.sock.write(head[i++]!), 50);
  t.after(() => clearInterval(drip));
  const silent = await rawConnect(lease.port);
  conns.push(silent.sock);
  await waitUntil(() => slow.closed() && silent.closed(), 'slowloris and silent connections closed', 5000);
  assert.match(slow.received(), /^HTTP\/1\.1 408 /);
  assert.ok(count(HttpDropReason.TIMEOUT) >= 2, `timeouts: ${count(HttpDropReason.TIMEOUT)}`);

  const big = await rawConnect(lease.port);
  conns.push(big.sock);
  big.sock.write(`GET /health HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(2048)}\r\n\r\n`);
  await waitUntil(() => big.closed(), 'the big head closed', 5000);
  assert.match(big.received(), /^HTTP\/1\.1 431 /);
  assert.equal(count(HttpDropReason.BAD_REQUEST), 1);

  // A keep-alive connection after its answer: closed after keepAliveTimeoutMs, not a drop.
  const timeoutsBefore = count(HttpDropReason.TIMEOUT);
  const ka = await rawConnect(lease.port);
  conns.push(ka.sock);
  ka.sock.write('GET /health HTTP/1.1\r\nHost: a\r\n\r\n');
  await waitUntil(() => ka.closed(), 'the idle keep-alive connection closed', 5000);
  assert.match(ka.received(), /^HTTP\/1\.1 200 OK/);
  assert.equal(count(HttpDropReason.TIMEOUT), timeoutsBefore);
});
