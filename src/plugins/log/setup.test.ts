/**
 * log: setup from Corefile text, the common/combined line shape CoreDNS prints, name scopes,
 * response classes, several `log` lines in one block.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import type { Answer, RecordType } from 'dns-packet';
import type { Handler, Logger, ResponseWriter, SetupContext } from '../../plugin.ts';
import { Proto, Request } from '../../server/request.ts';
import { ParseResult, parseQuery } from '../../wire/query.ts';
import { parseCorefile } from '../../corefile/parser.ts';
import { TestEngine, setupContext } from '../../../test/lib/metrics-testing.ts';
import { loadConfig } from '../../config/load.ts';
import { LogClass, LogPlugin, logSetup } from './setup.ts';

const quiet: Logger = { info() {}, warn() {}, error() {} };

const engine = new TestEngine();

function ctx(): SetupContext {
  return setupContext(engine, { log: quiet });
}

/** Sets up the block's one `log` directive, printing into `lines`. */
function logFrom(directive: string, lines: string[]): LogPlugin {
  const [block] = parseCorefile(`.:53 {\n  ${directive}\n}\n`, 'Corefile', {});
  const d = block!.directives[0]!;
  const p = logSetup.setup(d, ctx()) as LogPlugin;
  return new LogPlugin(p.rules, (l) => lines.push(l));
}

function setupError(directive: string): string {
  const [block] = parseCorefile(`.:53 {\n  ${directive}\n}\n`, 'Corefile', {});
  try {
    logSetup.setup(block!.directives[0]!, ctx());
  } catch (err) {
    return (err as Error).message;
  }
  return assert.fail('setup accepted the directive');
}

interface Sent {
  msg: Buffer | null;
}

interface QueryOpts {
  id?: number;
  edns?: number;
  dnssecOk?: boolean;
  proto?: 0 | 1;
  remote?: string;
  port?: number;
}

function query(name: string, type: RecordType, o: QueryOpts = {}): { req: Request; sent: Sent } {
  const msg = dnsPacket.encode({
    type: 'query',
    id: o.id ?? 4660,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, class: 'IN', name }],
    additionals: o.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: o.edns, flags: o.dnssecOk ? dnsPacket.DNSSEC_OK : 0 } as Answer] : [],
  });
  const sent: Sent = { msg: null };
  const writer: ResponseWriter = {
    writeMsg(_r, m, len) {
      sent.msg = Buffer.from(m.subarray(0, len));
    },
  };
  const req = new Request(msg, msg.length, writer);
  assert.equal(parseQuery(req), ParseResult.OK);
  req.proto = o.proto ?? Proto.UDP;
  req.remoteAddress = o.remote ?? '127.0.0.1';
  req.family = req.remoteAddress.includes(':') ? 6 : 4;
  req.remotePort = o.port ?? 40212;
  req.startMs = performance.now();
  return { req, sent };
}

type Kind = 'answer' | 'nxdomain' | 'nodata' | 'servfail' | 'delegation' | 'bare-nxdomain' | 'notimp';

/** The next plugin: answers each query as `kind` says. */
function upstream(kind: Kind): Handler {
  return {
    serve(req: Request): void {
      const q = dnsPacket.decode(req.msg);
      const rcode = kind === 'nxdomain' || kind === 'bare-nxdomain' ? 3 : kind === 'servfail' ? 2 : kind === 'notimp' ? 4 : 0;
      const soa: Answer = {
        type: 'SOA',
        name: 'example.org',
        ttl: 60,
        data: { mname: 'ns.example.org', rname: 'admin.example.org', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 },
      };
      const out = dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
        questions: q.questions,
        answers: kind === 'answer' ? [{ type: 'A', name: q.questions![0]!.name, ttl: 30, data: '192.0.2.1' }] : [],
        authorities:
          kind === 'nxdomain' || kind === 'nodata'
            ? [soa]
            : kind === 'delegation'
              ? [{ type: 'NS', name: q.questions![0]!.name, ttl: 60, data: 'ns.example.net' }]
              : [],
      });
      req.reply(out, out.length, 'test');
    },
  };
}

function run(plugin: LogPlugin, kind: Kind, name: string, type: RecordType = 'A', o: QueryOpts = {}): { req: Request; resp: Buffer } {
  const { req, sent } = query(name, type, o);
  plugin.compose(upstream(kind)).serve(req);
  assert.ok(sent.msg, 'the response went through to the client writer');
  return { req, resp: sent.msg };
}

test('log: the common log format line, as CoreDNS prints it', () => {
  const lines: string[] = [];
  const p = logFrom('log', lines);
  const { req, resp } = run(p, 'answer', 'www.example.org', 'A', { edns: 4096 });
  assert.equal(lines.length, 1);
  const m = /^\[INFO\] 127\.0\.0\.1:40212 - 4660 "A IN www\.example\.org\. udp (\d+) false 4096" NOERROR qr,rd,ra (\d+) (\d+(?:\.\d+)?)s$/.exec(lines[0]!);
  assert.ok(m, `line shape: ${lines[0]}`);
  assert.equal(Number(m[1]), req.msgLen);
  assert.equal(Number(m[2]), resp.length);
  assert.ok(Number(m[3]) < 5);
});

test('log: name lower-cased, IPv6 remote in brackets, TCP bufsize 65535, DO bit, other rcodes and types', () => {
  const lines: string[] = [];
  const p = logFrom('log', lines);
  run(p, 'nxdomain', 'NoPe.Example.ORG', 'AAAA', { proto: Proto.TCP, remote: '::1', port: 5353, id: 7, edns: 1232, dnssecOk: true });
  assert.match(lines[0]!, /^\[INFO\] \[::1\]:5353 - 7 "AAAA IN nope\.example\.org\. tcp \d+ true 65535" NXDOMAIN qr,rd,ra \d+ [0-9.]+s$/);
  run(p, 'servfail', 'x.example.org', 'SRV');
  assert.match(lines[1]!, /"SRV IN x\.example\.org\. udp \d+ false 512" SERVFAIL qr,rd,ra /);
});

test('log: {combined} adds the opcode; a custom format keeps unknown placeholders as text', () => {
  const lines: string[] = [];
  run(logFrom('log . {combined}', lines), 'answer', 'a.example.org');
  assert.match(lines[0]!, /^\[INFO\] 127\.0\.0\.1:40212 - 4660 "A IN a\.example\.org\. udp \d+ false 512" NOERROR qr,rd,ra \d+ [0-9.]+s "0"$/);
  run(logFrom('log . "{type} {name} {rcode} {foo} {server}"', lines), 'answer', 'b.example.org');
  // {server} is not one of CoreDNS's placeholders: literal text, as {foo}.
  assert.equal(lines[1], '[INFO] A b.example.org. NOERROR {foo} {server}');
});

test('log: name scopes: only names at or under them are logged', () => {
  const lines: string[] = [];
  const p = logFrom('log example.org', lines);
  run(p, 'answer', 'www.example.org');
  run(p, 'answer', 'example.org');
  run(p, 'answer', 'www.example.com');
  run(p, 'answer', 'notexample.org');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /www\.example\.org\./);
  assert.match(lines[1]!, /"A IN example\.org\./);
});

test('log: classes select what is logged, as CoreDNS response.Classify (success: answers and delegations; denial: NXDOMAIN or NODATA with SOA; error: the rest)', () => {
  const kinds: Kind[] = ['answer', 'delegation', 'nxdomain', 'nodata', 'bare-nxdomain', 'servfail', 'notimp'];
  const cases: [string, Kind[]][] = [
    ['log {\n    class success\n  }', ['answer', 'delegation']],
    ['log {\n    class denial\n  }', ['nxdomain', 'nodata']],
    ['log {\n    class error\n  }', ['bare-nxdomain', 'servfail', 'notimp']],
    ['log {\n    class denial error\n  }', ['nxdomain', 'nodata', 'bare-nxdomain', 'servfail', 'notimp']],
    ['log {\n    class all\n  }', kinds],
  ];
  for (const [directive, logged] of cases) {
    const lines: string[] = [];
    const p = logFrom(directive, lines);
    for (const kind of kinds) run(p, kind, `${kind}.example.org`);
    assert.deepEqual(
      lines.map((l) => /"A IN ([a-z-]+)\./.exec(l)![1]),
      logged,
      directive,
    );
  }
  assert.equal(logFrom('log', []).rules[0]!.classes, LogClass.ALL);
});

test('log: each log line is its own rule (scope, format), the first matching rule logs', async () => {
  const cfg = await loadConfig('.:53 {\n  log a.test {combined}\n  log b.test\n  log . "{name}"\n}\n', 'Corefile', {
    defaultBind: ['127.0.0.1'],
    defaultPort: 53,
    env: {},
    clock: () => performance.now(),
    log: quiet,
    engine,
  });
  const loaded = cfg.blocks[0]!.plugins.find((p) => p.name === 'log') as LogPlugin;
  assert.equal(loaded.rules.length, 3);
  const lines: string[] = [];
  const p = new LogPlugin(loaded.rules, (l) => lines.push(l));
  run(p, 'answer', 'x.a.test');
  run(p, 'answer', 'x.b.test');
  run(p, 'answer', 'x.c.test');
  assert.match(lines[0]!, /"A IN x\.a\.test\. udp \d+ false 512" NOERROR qr,rd,ra \d+ [0-9.]+s "0"$/);
  assert.match(lines[1]!, /"A IN x\.b\.test\. udp \d+ false 512" NOERROR qr,rd,ra \d+ [0-9.]+s$/);
  assert.equal(lines[2], '[INFO] x.c.test.');
});

test('log: the response still reaches the client unchanged when not logged', () => {
  const lines: string[] = [];
  const p = logFrom('log {\n    class error\n  }', lines);
  const { resp } = run(p, 'answer', 'www.example.org');
  const d = dnsPacket.decode(resp);
  assert.equal((d.answers![0] as { data: unknown }).data, '192.0.2.1');
  assert.equal(lines.length, 0);
});

test('log: setup errors', () => {
  assert.equal(setupError('log {\n    class bogus\n  }'), 'Corefile:3 - Error during parsing: invalid Class: bogus');
  assert.equal(setupError('log {\n    class\n  }'), "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'class'");
  assert.equal(setupError('log {\n    format x\n  }'), "Corefile:3 - Error during parsing: unknown property 'format'");
});

test("log: every placeholder of CoreDNS's replacer", () => {
  const lines: string[] = [];
  const fmt = '{type}|{name}|{class}|{proto}|{remote}|{local}|{size}|{port}|{rcode}|{rsize}|{>rflags}|{>bufsize}|{>do}|{>id}|{>opcode}';
  const p = logFrom(`log . "${fmt}"`, lines);
  const { req, resp } = (() => {
    const { req, sent } = query('Www.Example.org', 'MX', { id: 99, edns: 1400, dnssecOk: true, remote: '2001:db8::7', port: 1234 });
    req.server = 'dns://[fd00::10]:53';
    p.compose(upstream('answer')).serve(req);
    return { req, resp: sent.msg! };
  })();
  assert.equal(lines[0], `[INFO] MX|www.example.org.|IN|udp|[2001:db8::7]|[fd00::10]|${req.msgLen}|1234|NOERROR|${resp.length}|qr,rd,ra|1400|true|99|0`);
  const { req: r4 } = query('a.example.org', 'SPF' as RecordType, { proto: Proto.TCP });
  r4.server = 'dns://127.0.0.53:1053';
  p.compose(upstream('servfail')).serve(r4);
  assert.match(
    lines[1]!,
    /^\[INFO\] SPF\|a\.example\.org\.\|IN\|tcp\|127\.0\.0\.1\|127\.0\.0\.53\|\d+\|40212\|SERVFAIL\|\d+\|qr,rd,ra\|65535\|false\|4660\|0$/,
  );
});

test('log: {duration} is seconds with an s; {common} and {combined} expand inside a format', () => {
  const lines: string[] = [];
  run(logFrom('log . "{duration} [{common}]"', lines), 'answer', 'd.example.org');
  assert.match(lines[0]!, /^\[INFO\] \d+(\.\d+)?s \[127\.0\.0\.1:40212 - 4660 "A IN d\.example\.org\. udp \d+ false 512" NOERROR qr,rd,ra \d+ \d+(\.\d+)?s\]$/);
});

test("log: the format is split as CoreDNS's replacer does (nearest { before each }, unknown labels literal)", () => {
  const lines: string[] = [];
  for (const [fmt, want] of [
    ['{ {type} }', '{ A }'],
    ['A } {type}', 'A } A'],
    ['{type', '{type'],
    ['{{>id}}', '{4660}'],
    ['x{TYPE}y', 'x{TYPE}y'],
    ['{>ID}', '{>ID}'],
  ] as const) {
    lines.length = 0;
    run(logFrom(`log . "${fmt}"`, lines), 'answer', 'f.example.org');
    assert.equal(lines[0], `[INFO] ${want}`, fmt);
  }
});

test('log: {/LABEL} prints the metadata value, - without it or without the metadata plugin; log/type and log/class are published', () => {
  const lines: string[] = [];
  const p = logFrom('log . "{/test/label} {/missing} {/log/type} {/log/class}"', lines);
  // No metadata plugin in the block: req.metadata is null.
  run(p, 'answer', 'm.example.org');
  assert.equal(lines[0], '[INFO] - - - -');
  for (const [kind, type, cls] of [
    ['answer', 'NOERROR', 'success'],
    ['nodata', 'NODATA', 'denial'],
    ['nxdomain', 'NXDOMAIN', 'denial'],
    ['servfail', 'SERVERERROR', 'error'],
    ['delegation', 'DELEGATION', 'success'],
    ['bare-nxdomain', 'OTHERERROR', 'error'],
  ] as const) {
    lines.length = 0;
    const { req } = query('m.example.org', 'A');
    req.metadata = new Map([['test/label', () => 'hello']]);
    p.compose(upstream(kind)).serve(req);
    assert.equal(lines[0], `[INFO] hello - ${type} ${cls}`, kind);
  }
});

test('log: one argument is a name scope even with { in it (CoreDNS); two or more end with a format when the last has {', () => {
  assert.deepEqual(logFrom('log example.org', []).rules[0]!.names, ['example.org.']);
  assert.deepEqual(logFrom('log {combined}', []).rules[0]!.names, ['{combined}.']);
  const two = logFrom('log a.test b.test', []).rules[0]!;
  assert.deepEqual(two.names, ['a.test.', 'b.test.']);
  const fmt = logFrom('log a.test b.test "{name}"', []).rules[0]!;
  assert.deepEqual(fmt.names, ['a.test.', 'b.test.']);
  assert.equal(fmt.parts.length, 1);
});

test('log: rcodes by miekg name (extended ones from the OPT), the number when unnamed', () => {
  const lines: string[] = [];
  const p = logFrom('log . "{rcode}"', lines);
  const send = (rcodeLow: number, ext: number) => {
    const { req } = query('r.example.org', 'A', { edns: 1232 });
    const h: Handler = {
      serve(r: Request) {
        const out = Buffer.from(
          dnsPacket.encode({
            type: 'response',
            id: r.id,
            flags: rcodeLow,
            questions: [{ type: 'A', class: 'IN', name: 'r.example.org' }],
            additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as Answer],
          }),
        );
        // Extended rcode bits: the OPT TTL's first byte.
        out[out.length - 11 + 5] = ext;
        r.reply(out, out.length, 'test');
      },
    };
    p.compose(h).serve(req);
  };
  send(0, 1); // 16
  send(11, 0);
  send(12, 0);
  send(7, 1); // 23
  assert.deepEqual(lines, ['[INFO] BADSIG', '[INFO] DSOTYPENI', '[INFO] 12', '[INFO] BADCOOKIE']);
});
