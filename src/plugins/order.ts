/**
 * Plugin order as data: the position of each directive in the query chain, as in CoreDNS's
 * plugin.cfg (only the order matters; a Corefile's own order of lines does not).
 * Names listed here that node-local-dns does not implement get a clear "not supported" error.
 */
const PLUGIN_ORDER: readonly string[] = [
  'root',
  'metadata',
  'geoip',
  'cancel',
  'tls',
  'timeouts',
  'multisocket',
  'reload',
  'nsid',
  'bufsize',
  'bind',
  'debug',
  'trace',
  'ready',
  'health',
  'pprof',
  'prometheus',
  'errors',
  'log',
  'dnstap',
  'local',
  'dns64',
  'acl',
  'any',
  'chaos',
  'loadbalance',
  'tsig',
  'cache',
  'rewrite',
  'header',
  'dnssec',
  'autopath',
  'minimal',
  'template',
  'transfer',
  'hosts',
  'route53',
  'azure',
  'clouddns',
  'k8s_external',
  'kubernetes',
  'file',
  'auto',
  'secondary',
  'etcd',
  'loop',
  'forward',
  'grpc',
  'erratic',
  'whoami',
  'on',
  'sign',
  'view',
];

const INDEX = new Map(PLUGIN_ORDER.map((name, i) => [name, i]));

/** Chain position of a directive, or -1 when CoreDNS has no such plugin. */
export function pluginIndex(name: string): number {
  return INDEX.get(name) ?? -1;
}
