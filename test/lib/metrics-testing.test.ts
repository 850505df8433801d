import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExposition, sampleValue } from './metrics-testing.ts';

const GOOD = `# HELP a_total A counter.
# TYPE a_total counter
a_total{x="1",y="q\\"\\\\\\n"} 3
a_total{x="2"} 1e+06
# HELP h_seconds H.
# TYPE h_seconds histogram
h_seconds_bucket{le="0.5"} 1
h_seconds_bucket{le="+Inf"} 2
h_seconds_sum 0.7
h_seconds_count 2
`;

test('strict exposition parser accepts client_golang output', () => {
  const f = parseExposition(GOOD);
  assert.equal(sampleValue(f, 'a_total', { x: '1', y: 'q"\\\n' }), 3);
  assert.equal(sampleValue(f, 'a_total', { x: '2' }), 1e6);
  assert.equal(sampleValue(f, 'h_seconds_count'), 2);
  assert.equal(f.get('h_seconds')!.type, 'histogram');
});

test('strict exposition parser rejects malformed expositions', () => {
  const bad: [string, RegExp][] = [
    ['# TYPE a counter\na{x="1} 1\n', /unterminated label value/],
    ['# TYPE a counter\na{x="\\t"} 1\n', /bad escape/],
    ['# TYPE a counter\na 1x\n', /bad value/],
    ['# TYPE a counter\n# TYPE a counter\na 1\n', /TYPE for a twice/],
    ['# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na 2\n', /not together/],
    ['# TYPE 1a counter\n', /bad metric name/],
    ['# TYPE a counter\na 1\n# HELP a late\n', /HELP for a after its samples/],
    ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n', /not cumulative/],
    ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_count 3\n', /!= count 3/],
    ['# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n', /no \+Inf bucket/],
    ['# TYPE a counter\na 1', /no final newline/],
    ['# TYPE a counter\na{x="1",x="2"} 1\n', /given twice/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseExposition(text), re, text);
});
