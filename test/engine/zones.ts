/**
 * The upstream's data: a Kubernetes-like `cluster.local` (services, SRV, an ExternalName-style
 * CNAME leaving the zone, a TXT RRset too big for 512 bytes), its reverse zone, and the
 * external zone the CNAME points into.
 */

/** 6 strings of 120 bytes: ~750 bytes of RDATA, so the answer needs EDNS or TCP. */
export const BIG_TXT = Array.from({ length: 6 }, (_, i) => String.fromCharCode(97 + i).repeat(120));

export const CLUSTER_LOCAL = `$ORIGIN cluster.local.
$TTL 300
@                          IN SOA  ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 60
@                          IN NS   ns.dns
ns.dns                     IN A    10.96.0.10
kube-dns.kube-system.svc   IN A    10.96.0.10
web.default.svc            IN A    10.244.1.5
web.default.svc            IN AAAA fd00:10:244:1::5
_http._tcp.web.default.svc IN SRV  0 100 80 web.default.svc
alias.default.svc          IN CNAME web.default.svc
ext.default.svc            IN CNAME db.example.net.
big.default.svc            IN TXT  ${BIG_TXT.map((s) => `"${s}"`).join(' ')}
www                        IN A    10.96.0.80
`;

export const REVERSE_10 = `$ORIGIN 10.in-addr.arpa.
$TTL 300
@           IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 60
@           IN NS  ns.dns.cluster.local.
10.0.96     IN PTR kube-dns.kube-system.svc.cluster.local.
5.1.244     IN PTR web.default.svc.cluster.local.
`;

export const EXAMPLE_NET = `$ORIGIN example.net.
$TTL 300
@  IN SOA ns.example.net. hostmaster.example.net. 1 7200 1800 86400 60
@  IN NS  ns
ns IN A   192.0.2.1
db IN A   192.0.2.20
`;

/** A zone for the second upstream of the "garbage first, then a good one" test. */
export const FLAKY_TEST = `$ORIGIN flaky.test.
$TTL 300
@   IN SOA ns.flaky.test. hostmaster.flaky.test. 1 7200 1800 86400 60
@   IN NS  ns
ns  IN A   192.0.2.1
www IN A   192.0.2.99
`;
