import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Request } from '../../server/request.ts';
import { MetadataPlugin } from './metadata.ts';
import { metadataValue } from './replace.ts';
import { compileExtra } from '../dnstap/extra.ts';
import { encodeName } from '../../wire/name.ts';

function req(): Request {
  const q = Buffer.concat([Buffer.from('123401000001000000000000', 'hex'), encodeName('www.example.org.'), Buffer.from('00100001', 'hex')]);
  const r = new Request(q, q.length, { writeMsg() {} });
  r.qnameEnd = q.length - 4;
  r.questionEnd = q.length;
  r.qtype = 16;
  r.qclass = 1;
  r.id = 0x1234;
  r.remoteAddress = '10.0.0.7';
  r.remotePort = 5353;
  return r;
}

test('metadata plugin: every query of the block gets a map; the next handler sees it', () => {
  const p = new MetadataPlugin(['.']);
  const box: { seen: Map<string, () => string> | null } = { seen: null };
  const h = p.compose({ serve: (r) => (box.seen = r.metadata) });
  const r = req();
  assert.equal(r.metadata, null);
  h.serve(r);
  assert.ok(box.seen instanceof Map);
  assert.equal(r.metadata, box.seen);
});

test('metadataValue: "-" without metadata or label, value otherwise, a throwing value is "-"', () => {
  const r = req();
  assert.equal(metadataValue(r, 'forward/upstream'), '-', 'no metadata plugin');
  r.metadata = new Map();
  assert.equal(metadataValue(r, 'forward/upstream'), '-');
  r.metadata.set('forward/upstream', () => '10.0.0.10:53');
  assert.equal(metadataValue(r, 'forward/upstream'), '10.0.0.10:53');
  r.metadata.set('bad/label', () => {
    throw new Error('x');
  });
  assert.equal(metadataValue(r, 'bad/label'), '-');
});

test('dnstap extra: request placeholders, metadata, response placeholders as "-", unknown kept', () => {
  const r = req();
  r.metadata = new Map([['forward/upstream', () => '10.0.0.10:53']]);
  assert.equal(
    compileExtra('{type} {class} {name} {proto} {remote}:{port} {>id} {>do} {>bufsize} {size} {rcode} {rsize} {/forward/upstream} {unknown}')(r),
    `TXT IN www.example.org. udp 10.0.0.7:5353 4660 false 512 ${r.msgLen} - - 10.0.0.10:53 {unknown}`,
  );
  assert.equal(compileExtra('constant')(r), 'constant');
});
