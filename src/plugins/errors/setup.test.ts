/**
 * errors: setup (`errors [stdout] { consolidate DURATION REGEXP [LEVEL] }`), the line CoreDNS
 * prints for a plugin error, and consolidation into one summary line per period.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import type { Logger, ResponseWriter, SetupContext } from '../../plugin.ts';
import { Request } from '../../server/request.ts';
import { ParseResult, parseQuery } from '../../wire/query.ts';
import { parseCorefile } from '../../corefile/parser.ts';
import { TestEngine, setupContext } from '../../../test/lib/metrics-testing.ts';
import { ErrorsPlugin, errorsSetup } from './setup.ts';

const engine = new TestEngine();

function ctx(): SetupContext {
  return setupContext(engine, { serverLabels: [], log: { info() {}, warn() {}, error() {} } });
}

function setup(directive: string): ErrorsPlugin {
  const [block] = parseCorefile(`.:53 {\n  ${directive}\n}\n`, 'Corefile', {});
  return errorsSetup.setup(block!.directives[0]!, ctx()) as ErrorsPlugin;
}

function setupError(directive: string): string {
  try {
    setup(directive);
  } catch (err) {
    return (err as Error).message;
  }
  return assert.fail('setup accepted the directive');
}

class Lines implements Logger {
  readonly out: string[] = [];
  info(m: string): void {
    this.out.push(`[INFO] ${m}`);
  }
  warn(m: string): void {
    this.out.push(`[WARNING] ${m}`);
  }
  error(m: string): void {
    this.out.push(`[ERROR] ${m}`);
  }
}

const discard: ResponseWriter = { writeMsg() {} };

function request(name: string, type: 'A' | 'AAAA' | 'SRV'): Request {
  const msg = dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, class: 'IN', name }] });
  const req = new Request(msg, msg.length, discard);
  assert.equal(parseQuery(req), ParseResult.OK);
  return req;
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const end = performance.now() + 3000;
  while (!cond()) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('errors: setup forms', () => {
  assert.deepEqual(setup('errors').rules, []);
  assert.deepEqual(setup('errors stdout').rules, []);
  const p = setup('errors {\n    consolidate 5m ".* i/o timeout$" warning\n    consolidate 30s "^Failed to .+"\n  }');
  assert.deepEqual(
    p.rules.map((r) => ({ periodMs: r.periodMs, source: r.source, level: r.level })),
    [
      { periodMs: 300_000, source: '.* i/o timeout$', level: 'warning' },
      { periodMs: 30_000, source: '^Failed to .+', level: 'error' },
    ],
  );
});

test('errors: setup errors carry file:line', () => {
  assert.equal(setupError('errors /var/log/errors.log'), 'Corefile:2 - Error during parsing: invalid log file: /var/log/errors.log');
  assert.equal(setupError('errors stdout extra'), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'");
  assert.equal(setupError('errors {\n    consolidate 5m\n  }'), "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after '5m'");
  assert.equal(
    setupError('errors {\n    consolidate 5m x critical\n  }'),
    'Corefile:3 - Error during parsing: unknown log level argument in consolidate: critical',
  );
  assert.equal(setupError('errors {\n    retain 5m\n  }'), "Corefile:3 - Error during parsing: unknown property 'retain'");
  assert.match(setupError('errors {\n    consolidate 5m "("\n  }'), /^Corefile:3 - Error during parsing: invalid regexp '\(': /);
  assert.match(setupError('errors {\n    consolidate five x\n  }'), /^Corefile:3 - Error during parsing: invalid duration 'five'/);
});

test('errors: a reported error is logged as "RCODE NAME TYPE: message", name lower-cased', () => {
  const lines = new Lines();
  const p = new ErrorsPlugin([], lines);
  const req = request('www.Example.org', 'AAAA');
  req.errorSink = p.errorSink;
  req.reportError('forward', new Error('read udp 127.0.0.1:40000->127.0.0.1:53: i/o timeout'));
  assert.deepEqual(lines.out, ['[ERROR] 2 www.example.org. AAAA: read udp 127.0.0.1:40000->127.0.0.1:53: i/o timeout']);
  assert.equal(p.reported, 1);
});

test('errors: consolidate counts matching errors and prints one line per period at its level', async (t) => {
  const lines = new Lines();
  // Patterns match the error text alone (an anchored ^ works), not the logged line.
  const configured = setup('errors {\n    consolidate 100ms "i/o timeout$" warning\n    consolidate 100ms "^connection refused"\n  }');
  const p = new ErrorsPlugin(configured.rules, lines);
  t.after(() => p.stop());
  p.start();
  for (let i = 0; i < 3; i++) p.errorSink(request(`h${i}.example.org`, 'A'), 'forward', new Error('read udp: i/o timeout'));
  p.errorSink(request('r.example.org', 'A'), 'forward', new Error('connection refused'));
  p.errorSink(request('other.example.org', 'SRV'), 'forward', new Error('no healthy upstream'));
  assert.deepEqual(lines.out, ['[ERROR] 2 other.example.org. SRV: no healthy upstream']);
  await waitFor(() => lines.out.length >= 3, 'the consolidated lines');
  assert.deepEqual(lines.out.slice(1).sort(), [
    "[ERROR] 1 errors like '^connection refused' occurred in last 100ms",
    "[WARNING] 3 errors like 'i/o timeout$' occurred in last 100ms",
  ]);
  // Quiet periods print nothing; the counters restart.
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(lines.out.length, 3);
  p.errorSink(request('again.example.org', 'A'), 'forward', new Error('i/o timeout'));
  await waitFor(() => lines.out.length === 4, 'the next period');
  assert.equal(lines.out[3], "[WARNING] 1 errors like 'i/o timeout$' occurred in last 100ms");
});

test('errors: stop() ends the consolidation timers', async () => {
  const lines = new Lines();
  const p = new ErrorsPlugin(setup('errors {\n    consolidate 50ms "x"\n  }').rules, lines);
  p.start();
  p.stop();
  p.errorSink(request('a.example.org', 'A'), 'forward', new Error('x'));
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(lines.out, []);
});
