/**
 * The parsed form of a Corefile (Caddyfile syntax as CoreDNS reads it).
 */

/** One word of the Corefile, after `{$ENV}` substitution and quote removal. */
export interface Token {
  text: string;
  file: string;
  line: number;
  /** True when the word was written in quotes (so `{` in quotes is not a block opener). */
  quoted: boolean;
}

/**
 * A directive line: `name arg arg ... [{ nested directives }]`.
 * Inside a plugin's block every line is again a Directive (e.g. `success 9984 30`).
 */
export interface Directive {
  name: string;
  args: Token[];
  /** Nested `{ ... }` lines, or null when the directive has no block. */
  block: Directive[] | null;
  file: string;
  line: number;
}

/** A server block: `key [key...] { directives }`. */
export interface ServerBlock {
  /** Raw keys as written, e.g. `cluster.local:53`, `dns://.:53`, `in-addr.arpa`. */
  keys: Token[];
  directives: Directive[];
  file: string;
  line: number;
}

/** A parsed server block key. */
export interface ServerAddress {
  /** `dns` (only plain DNS is served; other schemes are a config error). */
  scheme: 'dns';
  /** Normalised zone: lower case, fully qualified, `.` for the root. */
  zone: string;
  /** Port from the key, or null when the key has none (then `-dns.port` applies). */
  port: number | null;
}
