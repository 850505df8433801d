/**
 * Zones the rewrite tests serve from a real Knot DNS: `new.test` (where a domain moved to;
 * `old.test` is served by nobody), and the zones behind CoreDNS's README examples of rewrite
 * (consul, google.com, coredns.rocks, 10.in-addr.arpa, example.com, blue, a zone that fails to load). Loopback only.
 */
export const NEW_TEST = `$ORIGIN new.test.
$TTL 300
@          IN SOA   ns.new.test. admin.new.test. 1 3600 600 86400 60
@          IN NS    ns
ns         IN A     192.0.2.53
x          IN A     192.0.2.10
x          IN AAAA  2001:db8::10
alias      IN CNAME x
mail       IN MX    10 mx.new.test.
mx         IN A     192.0.2.25
_sip._udp  IN SRV   0 5 5060 sip.new.test.
sip        IN A     192.0.2.50
short 5    IN A     192.0.2.11
long 86400 IN A     192.0.2.12
`;

export const CONSUL = `$ORIGIN consul.
$TTL 0
@                      IN SOA   ns.consul. admin.consul. 1 3600 600 86400 0
@                      IN NS    ns
ns                     IN A     192.0.2.53
ftp.service.us-west-1  IN A     10.10.10.10
ftp.service.us-west-1  IN A     10.20.20.20
ftp.service.us-west-1  IN A     10.30.30.30
ftp.service            IN A     10.40.40.40
www.service            IN CNAME ftp.service
`;

export const GOOGLE = `$ORIGIN google.com.
$TTL 300
@          IN SOA   ns.google.com. admin.google.com. 1 3600 600 86400 60
@          IN NS    ns
ns         IN A     192.0.2.53
www        IN A     192.0.2.80
`;

export const COREDNS_ROCKS = `$ORIGIN coredns.rocks.
$TTL 0
@          IN SOA   ns.coredns.rocks. admin.coredns.rocks. 1 3600 600 86400 0
@          IN NS    ns
ns         IN A     192.0.2.53
www        IN A     192.0.2.81
`;

export const REVERSE_10 = `$ORIGIN 10.in-addr.arpa.
$TTL 60
@              IN SOA ns.consul. admin.consul. 1 3600 600 86400 60
@              IN NS  ns.consul.
30.30.30       IN PTR ftp-us-west-1.service.consul.
`;

/** `example.com`, for the README's ttl examples. */
export const EXAMPLE_COM = `$ORIGIN example.com.
$TTL 3600
@          IN SOA   ns.example.com. admin.example.com. 1 3600 600 86400 60
@          IN NS    ns
ns         IN A     192.0.2.53
@     10   IN A     192.0.2.1
@          IN TXT   "ttl 3600"
www   600  IN A     192.0.2.2
`;

/** `blue.`, a top-level zone for the README's `rewrite name exact RED BLUE`. */
export const BLUE = `$ORIGIN blue.
$TTL 300
@          IN SOA   ns.blue. admin.blue. 1 3600 600 86400 60
@          IN NS    ns
ns         IN A     192.0.2.53
@          IN A     192.0.2.77
`;

/** A zone Knot cannot load: it answers SERVFAIL below it (the README's rcode example). */
export const BROKEN = 'this is not a zone file\n';
