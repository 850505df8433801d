import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTrace, traceSetup, type TraceConfig } from './setup.ts';
import { MemoryLogger, TestEngine, directiveOf, setupContext } from '../../../test/lib/metrics-testing.ts';

const base: TraceConfig = {
  endpointType: 'zipkin',
  endpoint: 'http://localhost:9411/api/v2/spans',
  every: 1,
  serviceName: 'coredns',
  clientServer: false,
  datadogAnalyticsRate: 0,
  zipkinMaxBacklogSize: 0,
  zipkinMaxBatchSize: 0,
  zipkinMaxBatchIntervalMs: 0,
};

test('trace setup: endpoints and options as CoreDNS parses them', () => {
  const ok: [string, Partial<TraceConfig>][] = [
    ['trace', {}],
    ['trace localhost:1234', { endpoint: 'http://localhost:1234/api/v2/spans' }],
    ['trace http://localhost:1234/somewhere', { endpoint: 'http://localhost:1234/somewhere' }],
    ['trace zipkin tracinghost:9253', { endpoint: 'http://tracinghost:9253/api/v2/spans' }],
    ['trace ZIPKIN tracinghost:9253', { endpoint: 'http://tracinghost:9253/api/v2/spans' }],
    ['trace datadog localhost:8126', { endpointType: 'datadog', endpoint: 'localhost:8126' }],
    ['trace datadog http://localhost:8127', { endpointType: 'datadog', endpoint: 'http://localhost:8127' }],
    [
      'trace tracinghost:9411 {\nevery 10000\nservice dnsproxy\nclient_server\n}',
      { endpoint: 'http://tracinghost:9411/api/v2/spans', every: 10000, serviceName: 'dnsproxy', clientServer: true },
    ],
    ['trace {\nclient_server false\n}', { clientServer: false }],
    ['trace {\nclient_server T\n}', { clientServer: true }],
    ['trace datadog {\n}', { endpointType: 'zipkin', endpoint: 'http://datadog/api/v2/spans' }],
    ['trace datadog localhost {\ndatadog_analytics_rate 0.5\n}', { endpointType: 'datadog', endpoint: 'localhost', datadogAnalyticsRate: 0.5 }],
    ['trace {\ndatadog_analytics_rate\n}', { datadogAnalyticsRate: 0 }],
    [
      'trace {\nzipkin_max_backlog_size 100\nzipkin_max_batch_size 10\nzipkin_max_batch_interval 2s\n}',
      { zipkinMaxBacklogSize: 100, zipkinMaxBatchSize: 10, zipkinMaxBatchIntervalMs: 2000 },
    ],
  ];
  for (const [text, want] of ok) assert.deepEqual(parseTrace(directiveOf(text)), { ...base, ...want }, text);
});

test('trace setup: the invalid forms with their error texts', () => {
  const bad: [string, string][] = [
    ['trace foo localhost', "tracing endpoint type 'foo' is not supported"],
    ['trace a b c', "Wrong argument count or unexpected line ending after 'c'"],
    ['trace {\nevery\n}', "Wrong argument count or unexpected line ending after 'every'"],
    ['trace {\nevery 2 3\n}', "Wrong argument count or unexpected line ending after '3'"],
    ['trace {\nevery -1\n}', 'strconv.ParseUint: parsing "-1": invalid syntax'],
    ['trace {\nevery 18446744073709551616\n}', 'strconv.ParseUint: parsing "18446744073709551616": value out of range'],
    ['trace {\nservice\n}', "Wrong argument count or unexpected line ending after 'service'"],
    ['trace {\nclient_server yes\n}', 'strconv.ParseBool: parsing "yes": invalid syntax'],
    ['trace {\nclient_server true false\n}', "Wrong argument count or unexpected line ending after 'false'"],
    ['trace datadog {\ndatadog_analytics_rate 2\n}', "datadog analytics rate must be between 0 and 1, '2.000000' is not supported"],
    ['trace {\ndatadog_analytics_rate -0.1\n}', "datadog analytics rate must be between 0 and 1, '-0.100000' is not supported"],
    ['trace {\ndatadog_analytics_rate x\n}', 'strconv.ParseFloat: parsing "x": invalid syntax'],
    ['trace {\nzipkin_max_backlog_size x\n}', 'strconv.Atoi: parsing "x": invalid syntax'],
    ['trace {\nzipkin_max_batch_size\n}', "Wrong argument count or unexpected line ending after 'zipkin_max_batch_size'"],
    ['trace {\nzipkin_max_batch_interval 10\n}', 'time: missing unit in duration "10"'],
    ['trace {\nfoo\n}', "unknown property 'foo'"],
  ];
  for (const [text, detail] of bad) {
    assert.throws(
      () => parseTrace(directiveOf(text)),
      (err: Error) => {
        assert.match(err.message, /^Corefile:\d+ - Error during parsing: /, text);
        assert.equal(err.message.replace(/^Corefile:\d+ - Error during parsing: /, ''), detail, text);
        return true;
      },
    );
  }
});

test('trace setup: traces nothing, logs one warning naming the endpoint and what to use instead', () => {
  const log = new MemoryLogger();
  const p = traceSetup.setup(directiveOf('trace datadog localhost:8126'), setupContext(new TestEngine(), { log }));
  const next = { serve() {} };
  assert.equal(p.compose(next), next, 'no per-query work');
  assert.equal(p.start, undefined);
  assert.deepEqual(log.lines.length, 1);
  assert.match(log.lines[0]!, /^WARNING plugin\/trace: .*localhost:8126 \(datadog\).*log or dnstap.*--cpu-prof.*--inspect/);
});
