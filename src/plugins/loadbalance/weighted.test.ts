import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseCorefile } from '../../corefile/parser.ts';
import type { Logger, SetupContext } from '../../plugin.ts';
import { decodeMessage, encodeMessage, parseRR, type Message } from '../../wire/codec.ts';
import { Flag, QType } from '../../wire/codes.ts';
import { loadBalanceResponse } from '../../wire/shuffle.ts';
import { parseWeights, WeightFile } from './weighted.ts';
import { type LoadBalancePlugin, loadbalanceSetup } from './setup.ts';

/** Records log lines (the setup and the weight file only log). */
class MemoryLogger implements Logger {
  readonly lines: string[] = [];
  info(m: string): void {
    this.lines.push(`INFO ${m}`);
  }
  warn(m: string): void {
    this.lines.push(`WARNING ${m}`);
  }
  error(m: string): void {
    this.lines.push(`ERROR ${m}`);
  }
}

/** loadbalance's setup reads nothing of its context but the logger. */
const ctx = { log: new MemoryLogger() } as unknown as SetupContext;

function setup(directive: string): LoadBalancePlugin {
  const [block] = parseCorefile(`.:53 {\n  ${directive}\n}\n`, 'Corefile', {});
  return loadbalanceSetup.setup(block!.directives[0]!, ctx) as LoadBalancePlugin;
}

function setupError(directive: string): string {
  try {
    setup(directive);
  } catch (err) {
    return (err as Error).message;
  }
  return assert.fail(`setup accepted ${directive}`);
}

test('setup: weighted forms and CoreDNS error texts', () => {
  const p = setup('loadbalance weighted /tmp/w.txt');
  assert.equal(p.weights?.fileName, '/tmp/w.txt');
  assert.equal(p.weights?.reloadMs, 30_000);
  assert.equal(setup('loadbalance weighted wf {\n    reload 10s\n  }').weights?.reloadMs, 10_000);
  assert.equal(setup('loadbalance weighted wf {\n    reload 0s\n  }').weights?.reloadMs, 0);
  assert.equal(setup('loadbalance weighted wf').weights?.fileName, path.resolve('wf'));
  const cases: [string, string][] = [
    ['loadbalance weighted', 'Corefile:2 - Error during parsing: missing weight file argument'],
    ['loadbalance weighted a b', 'Corefile:2 - Error during parsing: unexpected argument(s)'],
    ['loadbalance weighted wf {\n    reload\n  }', 'Corefile:3 - Error during parsing: reload duration value is missing'],
    ['loadbalance weighted wf {\n    reload 10s 20s\n  }', 'Corefile:3 - Error during parsing: unexpected argument'],
    ['loadbalance weighted wf {\n    reload abc\n  }', "Corefile:3 - Error during parsing: invalid reload duration 'abc'"],
    ['loadbalance weighted wf {\n    prefer 10.0.0.0/8\n  }', "Corefile:3 - Error during parsing: unknown property 'prefer'"],
  ];
  for (const [text, want] of cases) assert.equal(setupError(text), want, text);
});

test('weight file: comments, names with and without the dot; every CoreDNS parse error', () => {
  const t = parseWeights('# c\n\nwww.example.com\n100.64.1.1 3\n  100.64.1.2   1  \nother.example.\n2001:db8::1 7\n', 'wf');
  assert.equal(t.size, 2);
  const bad: [string, string][] = [
    ['1.2.3.4\n', 'wrong domain name:"1.2.3.4" in weight file wf. (Maybe a missing weight value?)'],
    ['www\nnot-ip 3\n', 'wrong IP address:"not-ip" in weight file wf'],
    ['www\n1.2.3.4 0\n', 'wrong weight value:"0" in weight file wf'],
    ['www\n1.2.3.4 256\n', 'wrong weight value:"256" in weight file wf'],
    ['www\n1.2.3.4 x\n', 'wrong weight value:"x" in weight file wf'],
    ['1.2.3.4 3\n', 'missing domain name in weight file wf'],
    ['www\n1.2.3.4 3 4\n', 'could not parse weight line:"1.2.3.4 3 4" in weight file wf'],
  ];
  for (const [text, want] of bad)
    assert.throws(
      () => parseWeights(text, 'wf'),
      (e: Error) => e.message === want,
      want,
    );
});

function response(qtype: number, answer: string[]): Buffer {
  const m: Message = {
    id: 1,
    flags: Flag.QR,
    rcode: 0,
    question: [{ name: 'www.example.com.', type: qtype, class: 1 }],
    answer: answer.map((x) => parseRR(x)),
    authority: [],
    additional: [],
    edns: null,
  };
  return Buffer.from(encodeMessage(m));
}

test('weighted top record: frequencies follow 3:1:2 (README example), names match case-insensitively', () => {
  const t = parseWeights('www.example.com\n100.64.1.1 3\n100.64.1.2 1\n100.64.1.3 2\n', 'wf');
  const buf = response(QType.A, ['WWW.Example.com. 60 IN A 100.64.1.1', 'WWW.Example.com. 60 IN A 100.64.1.2', 'WWW.Example.com. 60 IN A 100.64.1.3']);
  const counts = new Map<string, number>();
  const N = 6000;
  for (let i = 0; i < N; i++) {
    const b = Buffer.from(buf);
    const out = loadBalanceResponse(b, b.length, null, t) ?? b;
    const m = decodeMessage(out);
    assert.equal(m.answer.length, 3);
    const top = m.answer[0]!.data as string;
    counts.set(top, (counts.get(top) ?? 0) + 1);
  }
  const share = (ip: string) => (counts.get(ip) ?? 0) / N;
  assert.ok(Math.abs(share('100.64.1.1') - 3 / 6) < 0.04, `${[...counts]}`);
  assert.ok(Math.abs(share('100.64.1.2') - 1 / 6) < 0.04, `${[...counts]}`);
  assert.ok(Math.abs(share('100.64.1.3') - 2 / 6) < 0.04, `${[...counts]}`);
});

test('weighted: unlisted addresses weigh 1; only A/AAAA/SRV questions; CNAMEs first', () => {
  const t = parseWeights('www.example.com\n100.64.1.1 255\n', 'wf');
  const buf = response(QType.A, ['www.example.com. 60 IN A 100.64.1.2', 'www.example.com. 60 IN A 100.64.1.1']);
  let top1 = 0;
  for (let i = 0; i < 500; i++) {
    const b = Buffer.from(buf);
    const m = decodeMessage(loadBalanceResponse(b, b.length, null, t) ?? b);
    if (m.answer[0]!.data === '100.64.1.1') top1++;
  }
  assert.ok(top1 > 480, `${top1}`); // 255/256
  const mx = response(QType.MX, ['www.example.com. 60 IN A 100.64.1.2', 'www.example.com. 60 IN A 100.64.1.1']);
  const b = Buffer.from(mx);
  assert.equal(loadBalanceResponse(b, b.length, null, t), null);
  assert.deepEqual(b, mx, 'MX question: untouched');
  const chain = response(QType.A, [
    'www.example.com. 60 IN A 100.64.1.2',
    'www.example.com. 60 IN CNAME x.example.com.',
    'www.example.com. 60 IN A 100.64.1.1',
  ]);
  const c = Buffer.from(chain);
  const m = decodeMessage(loadBalanceResponse(c, c.length, null, t) ?? c);
  assert.equal(m.answer[0]!.type, QType.CNAME);
});

test('WeightFile: start reads, reload picks up a change, a missing file is an error only without reload', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-wf-'));
  const log = new MemoryLogger();
  try {
    const f = path.join(dir, 'w');
    writeFileSync(f, 'a.example\n1.2.3.4 5\n');
    const wf = new WeightFile(f, 50, log);
    await wf.start();
    assert.equal(wf.table?.size, 1);
    writeFileSync(f, 'a.example\n1.2.3.4 5\nb.example\n1.2.3.5 5\n');
    const end = Date.now() + 3000;
    const size = (): number => wf.table?.size ?? 0;
    while (size() !== 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.equal(wf.table?.size, 2);
    wf.stop();
    await assert.rejects(new WeightFile(path.join(dir, 'nope'), 0, log).start(), /plugin\/loadbalance: weight file open error/);
    const retry = new WeightFile(path.join(dir, 'nope'), 1000, log);
    await retry.start();
    retry.stop();
    assert.ok(
      log.lines.some((l: string) => l.includes('Failed to open weight file')),
      log.lines.join('\n'),
    );
    writeFileSync(path.join(dir, 'bad'), '1.2.3.4 3\n');
    await assert.rejects(new WeightFile(path.join(dir, 'bad'), 0, log).start(), /missing domain name in weight file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
