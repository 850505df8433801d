/**
 * resolv.conf reading for `forward . /etc/resolv.conf` (resolv.conf(5); CoreDNS uses
 * miekg/dns ClientConfigFromFile): every `nameserver ADDRESS` line gives an upstream on port
 * 53. Other keywords (search, options, domain) and comment lines (`#`, `;`) are ignored.
 */
import { readFileSync } from 'node:fs';

export interface ResolvConf {
  /** Nameserver addresses in file order, as written (IPv6 zone kept: `fe80::1%eth0`). */
  nameservers: string[];
}

/** Parses resolv.conf text. Never throws. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'nameserver' && f.length > 1 && f[1] !== '') nameservers.push(f[1]!);
  }
  return { nameservers };
}

/** Reads and parses a resolv.conf-format file; null when it cannot be read (missing, a directory...). */
export function readResolvConf(path: string): ResolvConf | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  return parseResolvConf(text);
}
