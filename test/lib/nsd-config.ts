/**
 * The nsd.conf of the tests' NSD upstreams: one address, everything under `dir`, no privilege
 * drop, response rate limiting off (Debian's NSD limits answers by default, which would turn
 * load into timeouts), IPv4 only.
 */
export interface NsdConfigOptions {
  host: string;
  port: number;
  /** Holds the zone files, pid file and state; the zone file names are relative to it. */
  dir: string;
  logFile: string;
  /** Zone name → zone file name in `dir`. */
  zones: Record<string, string>;
  /** NSD's tcp-count (concurrent TCP connections); NSD's default when absent. */
  tcpCount?: number;
}

export function nsdConfig(o: NsdConfigOptions): string {
  let zoneConf = '';
  for (const [name, file] of Object.entries(o.zones)) zoneConf += `zone:\n  name: ${name}\n  zonefile: ${file}\n`;
  return `server:
  ip-address: ${o.host}@${o.port}
  zonesdir: "${o.dir}"
  pidfile: "${o.dir}/nsd.pid"
  database: ""
  xfrdfile: "${o.dir}/xfrd.state"
  zonelistfile: "${o.dir}/zone.list"
  username: ""
  chroot: ""
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
  logfile: "${o.logFile}"
  server-count: 1
${o.tcpCount === undefined ? '' : `  tcp-count: ${o.tcpCount}\n`}  do-ip6: no
  verbosity: 1
remote-control:
  control-enable: no
${zoneConf}`;
}
