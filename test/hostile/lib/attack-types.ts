/**
 * The configuration an attacker process (attacker.ts) takes as its one JSON argument, and the
 * counters it reports. Shared by the attacker and the test that starts it (attackers.ts).
 */

export interface HttpTarget {
  host: string;
  port: number;
  /** Path the held and slowloris requests name, and the scrapers GET. */
  path: string;
  /** Connections that send half a request line and then nothing. */
  held: number;
  /** Connections that send a request line and then one header line every 2 s, never ending the headers. */
  slowloris: number;
  /** Clients that GET `path` back to back on one keep-alive connection. */
  scrapers: number;
}

export interface AttackConfig {
  mode: 'malformed' | 'uniqueFlood' | 'sink' | 'pipeline' | 'connFlood' | 'httpFlood';
  /** Target (sink: the address to bind). */
  host: string;
  port: number;
  /** Source address of the attack's sockets (its own 127.0.0.x, as a pod has its own IP). */
  localAddress?: string;
  /** How long the attack runs at most. */
  durationMs: number;
  /** Packets per second (malformed, uniqueFlood). */
  rate?: number;
  /** Packets at most (malformed, uniqueFlood). */
  count?: number;
  /** Query name (pipeline, connFlood, malformed) or zone for the unique names (uniqueFlood). */
  qname?: string;
  qtype?: string;
  /** Zone under which the malformed attack makes names that miss the cache (forwarded upstream). */
  missZone?: string;
  /** Connections held at once (pipeline, connFlood). */
  connections?: number;
  /** Pipelined queries written on each connection (pipeline). */
  perConnection?: number;
  /** Connections opened at most, as a multiple of the connections held at once (reconnects after the server closes). */
  rounds?: number;
  targets?: HttpTarget[];
}

/** Counters by name (sent, replies, `reply:<RCODE>`, connections, closedByServer, ...). */
export type Stats = Record<string, number>;
