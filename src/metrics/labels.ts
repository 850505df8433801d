/**
 * Label values and bucket layouts exactly as CoreDNS writes them, as lookup tables the hot
 * path indexes without building strings.
 *
 *  - `type`: CoreDNS monitors a fixed set of query types (plugin/metrics/vars monitor.go);
 *    every other type is "other".
 *  - `rcode`: plugin/pkg/rcode.ToString: miekg/dns RcodeToString, else "RCODE<n>". The proxy
 *    (forward) metrics print unknown rcodes as the bare number instead.
 *  - `family`: "1" for IPv4, "2" for IPv6; `proto`: "udp" / "tcp".
 *  - Buckets: plugin.TimeBuckets (0.25 ms doubling 16 times), plugin.SlimTimeBuckets (0.25 ms
 *    times 10, 5 bounds) and the size buckets of request/response size histograms.
 */

/** Query types CoreDNS labels by name, in the order of their label index (0 is "other"). */
export const MONITORED_TYPE_LABELS: readonly string[] = [
  'other',
  'A',
  'AAAA',
  'CNAME',
  'DNSKEY',
  'DS',
  'MX',
  'NSEC3',
  'NSEC',
  'NS',
  'PTR',
  'RRSIG',
  'SOA',
  'SRV',
  'TXT',
  'HTTPS',
  'IXFR',
  'AXFR',
  'ANY',
];

const MONITORED_TYPE_CODES: readonly number[] = [-1, 1, 28, 5, 48, 43, 15, 50, 47, 2, 12, 46, 6, 33, 16, 65, 251, 252, 255];

export const TYPE_LABEL_COUNT = MONITORED_TYPE_LABELS.length;

/** qtype → index into MONITORED_TYPE_LABELS (0 = "other"). 64 KiB, built once. */
export const TYPE_INDEX: Uint8Array = (() => {
  const t = new Uint8Array(65536);
  for (let i = 1; i < MONITORED_TYPE_CODES.length; i++) t[MONITORED_TYPE_CODES[i]!] = i;
  return t;
})();

/** miekg/dns RcodeToString (current versions), by rcode value; holes are unnamed rcodes. */
const MIEKG_RCODE_NAMES: ReadonlyMap<number, string> = new Map([
  [0, 'NOERROR'],
  [1, 'FORMERR'],
  [2, 'SERVFAIL'],
  [3, 'NXDOMAIN'],
  [4, 'NOTIMP'],
  [5, 'REFUSED'],
  [6, 'YXDOMAIN'],
  [7, 'YXRRSET'],
  [8, 'NXRRSET'],
  [9, 'NOTAUTH'],
  [10, 'NOTZONE'],
  [11, 'DSOTYPENI'],
  // 16 is both BADVERS (RFC 6891) and BADSIG (RFC 8945); miekg/dns names it BADSIG.
  [16, 'BADSIG'],
  [17, 'BADKEY'],
  [18, 'BADTIME'],
  [19, 'BADMODE'],
  [20, 'BADNAME'],
  [21, 'BADALG'],
  [22, 'BADTRUNC'],
  [23, 'BADCOOKIE'],
]);

/** `rcode` label of coredns_dns_responses_total (CoreDNS's rcode.ToString). */
export function rcodeLabel(rcode: number): string {
  return MIEKG_RCODE_NAMES.get(rcode) ?? `RCODE${rcode}`;
}

/** `rcode` label of the proxy/forward metrics (unknown rcodes as the bare number). */
export function proxyRcodeLabel(rcode: number): string {
  return MIEKG_RCODE_NAMES.get(rcode) ?? String(rcode);
}

/**
 * Rcodes counted in a dense array slot; larger (extended) rcodes share the last slot and are
 * counted per value on a slow path.
 */
export const RCODE_SLOTS = 24;

export const FAMILY_LABELS: readonly string[] = ['1', '2'];
export const PROTO_LABELS: readonly string[] = ['udp', 'tcp'];

/** CoreDNS plugin.TimeBuckets: prometheus.ExponentialBuckets(0.00025, 2, 16). */
export const TIME_BUCKETS: readonly number[] = exponentialBuckets(0.00025, 2, 16);

/** CoreDNS plugin.SlimTimeBuckets: prometheus.ExponentialBuckets(0.00025, 10, 5). */
export const SLIM_TIME_BUCKETS: readonly number[] = exponentialBuckets(0.00025, 10, 5);

/** Buckets of coredns_dns_request_size_bytes and coredns_dns_response_size_bytes. */
export const SIZE_BUCKETS: readonly number[] = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3];

/** client_golang's ExponentialBuckets: start, start*factor, ... computed by repeated multiplication. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  let v = start;
  for (let i = 0; i < count; i++) {
    out.push(v);
    v *= factor;
  }
  return out;
}

/**
 * A bucket bound as the `le` label: client_golang formats floats with strconv 'g' shortest
 * (exponent form below 1e-4 and from 1e21 on); JavaScript's shortest form agrees in between.
 */
export function leLabel(bound: number): string {
  if (bound === Infinity) return '+Inf';
  return String(bound);
}
