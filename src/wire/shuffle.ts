/**
 * Reordering a response's records for the `loadbalance` plugin (CoreDNS plugin/loadbalance),
 * on the bytes, in place.
 *
 * CoreDNS's round_robin, per section (answer, authority, additional) of a NOERROR response that
 * is not AXFR/IXFR, when the section has two records or more:
 *  - a section of only A or only AAAA records is shuffled as a whole;
 *  - otherwise its records are regrouped: CNAMEs (in their order, so a chain stays a chain),
 *    then every other type (in their order), then the A and AAAA records shuffled together,
 *    then the MX records shuffled.
 * With `prefer` subnets, the answer and additional sections are then regrouped again as CoreDNS
 * does after its shuffle: CNAMEs, addresses inside the first subnet, inside the second, ...,
 * the other addresses, MX, the rest (each group keeping the shuffled order).
 *
 * In place: records are moved as byte ranges within their section. That is only correct when no
 * compression pointer in the message points into a moved record (a pointer's target would move
 * from under it). Upstream answers to A/AAAA questions point at the question or a CNAME's target,
 * which do not move, so they are reordered in place with no allocation. When some name does point
 * into a moved record (MX exchanges that additional records name, a chain of A records compressed
 * against each other), the message is decoded and re-encoded with the codec instead (slow path,
 * allocates), or left as it is when it holds a type whose compressed names the codec keeps as raw
 * bytes. Malformed messages, TSIG-signed ones and those with an extended rcode are left alone.
 * Every read is bounds-checked; nothing here throws.
 */
import { randomFillSync } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { QType } from './codes.ts';
import { skipName } from './name.ts';
import { decodeMessage, encodeMessage, type RR } from './codec.ts';
import type { WeightTable } from './weights.ts';

/** A message of 65535 bytes holds at most this many records (11 bytes each at least). */
const MAX_RR = 5958;
const TSIG = 250;

const starts = new Int32Array(MAX_RR);
const rdStarts = new Int32Array(MAX_RR);
const ends = new Int32Array(MAX_RR);
const types = new Uint16Array(MAX_RR);
/** order[k] = original index of the record now at position k. */
const order = new Int32Array(MAX_RR);
/** Per section (answer, authority, additional): the first and last record that moves, -1 when none. */
const movedFirst = new Int32Array(3);
const movedLast = new Int32Array(3);
const groupA = new Int32Array(MAX_RR);
const groupB = new Int32Array(MAX_RR);
const groupC = new Int32Array(MAX_RR);
const groupD = new Int32Array(MAX_RR);
const taken = new Uint8Array(MAX_RR);
const scratch = Buffer.allocUnsafe(65536);
const sectionBounds = new Int32Array(4);

/** A `prefer` subnet: network bytes (4 or 16) and prefix length. */
export interface Subnet {
  readonly bytes: Uint8Array;
  readonly bits: number;
}

/** xorshift32, seeded once from the OS: cheap, and good enough to spread load. */
const seed = new Uint32Array(1);
randomFillSync(seed);
let state = seed[0]! | 1;
function rand(): number {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return state >>> 0;
}

/** For tests: restarts the shuffle's random sequence. */
export function seedShuffle(s: number): void {
  state = s | 1;
}

function u16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

function shuffle(a: Int32Array, n: number): void {
  if (n < 2) return;
  if (n === 2) {
    if ((rand() & 1) === 0) {
      const t = a[0]!;
      a[0] = a[1]!;
      a[1] = t;
    }
    return;
  }
  for (let j = 0; j < n; j++) {
    const p = j + (rand() % (n - j));
    if (p === j) continue;
    const t = a[j]!;
    a[j] = a[p]!;
    a[p] = t;
  }
}

function isAddress(t: number): boolean {
  return t === QType.A || t === QType.AAAA;
}

/** CoreDNS roundRobin on records [from, to): the new order goes to order[from..to). */
function roundRobin(from: number, to: number): void {
  const n = to - from;
  const t0 = types[from]!;
  if (isAddress(t0)) {
    let same = true;
    for (let i = from + 1; i < to && same; i++) if (types[i] !== t0) same = false;
    if (same) {
      for (let i = 0; i < n; i++) groupA[i] = from + i;
      shuffle(groupA, n);
      for (let i = 0; i < n; i++) order[from + i] = groupA[i]!;
      return;
    }
  }
  let c = 0;
  let r = 0;
  let a = 0;
  let m = 0;
  for (let i = from; i < to; i++) {
    const t = types[i]!;
    if (t === QType.CNAME) groupA[c++] = i;
    else if (isAddress(t)) groupC[a++] = i;
    else if (t === QType.MX) groupD[m++] = i;
    else groupB[r++] = i;
  }
  shuffle(groupC, a);
  shuffle(groupD, m);
  let k = from;
  for (let i = 0; i < c; i++) order[k++] = groupA[i]!;
  for (let i = 0; i < r; i++) order[k++] = groupB[i]!;
  for (let i = 0; i < a; i++) order[k++] = groupC[i]!;
  for (let i = 0; i < m; i++) order[k++] = groupD[i]!;
}

function addressIn(buf: Uint8Array, rec: number, s: Subnet): boolean {
  const rd = rdStarts[rec]!;
  const rdlen = ends[rec]! - rd;
  let off: number;
  if (s.bytes.length === 4) {
    // An IPv4 network also holds IPv4-mapped IPv6 addresses (Go's IPNet.Contains).
    if (rdlen === 4) off = rd;
    else if (rdlen === 16 && isMapped(buf, rd)) off = rd + 12;
    else return false;
  } else {
    if (rdlen !== 16) return false;
    off = rd;
  }
  let bits = s.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((buf[off + i]! & mask) !== (s.bytes[i]! & mask)) return false;
  }
  return true;
}

function isMapped(buf: Uint8Array, p: number): boolean {
  for (let i = 0; i < 10; i++) if (buf[p + i] !== 0) return false;
  return buf[p + 10] === 0xff && buf[p + 11] === 0xff;
}

/** CoreDNS reorderRecords with prefer subnets, on order[from..to) (stable within each group). */
function preferOrder(buf: Uint8Array, from: number, to: number, subnets: readonly Subnet[]): void {
  let c = 0;
  let a = 0;
  let m = 0;
  let r = 0;
  for (let k = from; k < to; k++) {
    const i = order[k]!;
    const t = types[i]!;
    if (t === QType.CNAME) groupA[c++] = i;
    else if (isAddress(t)) groupB[a++] = i;
    else if (t === QType.MX) groupC[m++] = i;
    else groupD[r++] = i;
  }
  let k = from;
  for (let i = 0; i < c; i++) order[k++] = groupA[i]!;
  taken.fill(0, 0, a);
  for (const s of subnets) {
    for (let i = 0; i < a; i++) {
      if (taken[i] === 0 && addressIn(buf, groupB[i]!, s)) {
        taken[i] = 1;
        order[k++] = groupB[i]!;
      }
    }
  }
  for (let i = 0; i < a; i++) if (taken[i] === 0) order[k++] = groupB[i]!;
  for (let i = 0; i < m; i++) order[k++] = groupC[i]!;
  for (let i = 0; i < r; i++) order[k++] = groupD[i]!;
}

/**
 * CoreDNS weightedRoundRobin on records [from, to): when the section has addresses, one is
 * chosen with probability weight/sum and swapped to the front of the addresses; the section is
 * regrouped as CNAMEs, other types, addresses, MX. Without addresses it stays as it is.
 */
function weightedOrder(buf: Uint8Array, len: number, from: number, to: number, weights: WeightTable): void {
  let c = 0;
  let r = 0;
  let a = 0;
  let m = 0;
  for (let i = from; i < to; i++) {
    const t = types[i]!;
    if (t === QType.CNAME) groupA[c++] = i;
    else if (isAddress(t)) groupC[a++] = i;
    else if (t === QType.MX) groupD[m++] = i;
    else groupB[r++] = i;
  }
  if (a === 0) return;
  let sum = 0;
  for (let i = 0; i < a; i++) {
    const rec = groupC[i]!;
    const w = weights.weightOf(buf, len, starts[rec]!, rdStarts[rec]!, ends[rec]! - rdStarts[rec]!);
    taken[i] = w;
    sum += w;
  }
  const v = rand() % sum;
  let acc = 0;
  let top = 0;
  for (let i = 0; i < a; i++) {
    acc += taken[i]!;
    if (v < acc) {
      top = i;
      break;
    }
  }
  if (top !== 0) {
    const t = groupC[0]!;
    groupC[0] = groupC[top]!;
    groupC[top] = t;
  }
  let k = from;
  for (let i = 0; i < c; i++) order[k++] = groupA[i]!;
  for (let i = 0; i < r; i++) order[k++] = groupB[i]!;
  for (let i = 0; i < a; i++) order[k++] = groupC[i]!;
  for (let i = 0; i < m; i++) order[k++] = groupD[i]!;
}

/**
 * Calls visit(p) for the start of every domain name in record i (owner, and RDATA names of the
 * types that have them). Returns false when visit did.
 */
function eachName(i: number, visit: (p: number, end: number) => boolean): boolean {
  if (!visit(starts[i]!, rdStarts[i]!)) return false;
  const rd = rdStarts[i]!;
  const end = ends[i]!;
  switch (types[i]!) {
    case 2:
    case 3:
    case 4:
    case 5:
    case 7:
    case 8:
    case 9:
    case 12:
    case 39:
    case 47: // NS MD MF CNAME MB MG MR PTR DNAME NSEC
      return visit(rd, end);
    case 6:
    case 14:
    case 17: {
      // SOA MINFO RP: two names
      if (!visit(rd, end)) return false;
      return visit(skipNameOr(rd, end), end);
    }
    case 15:
    case 18:
    case 21:
    case 36: // MX AFSDB RT KX
      return visit(rd + 2, end);
    case 26: // PX
      if (!visit(rd + 2, end)) return false;
      return visit(skipNameOr(rd + 2, end), end);
    case 33: // SRV
      return visit(rd + 6, end);
    case 24:
    case 46: // SIG RRSIG: signer name
      return visit(rd + 18, end);
    default:
      return true;
  }
}

let curBuf: Uint8Array = scratch;
let curLen = 0;

function skipNameOr(p: number, end: number): number {
  if (p >= end) return end;
  const n = skipName(curBuf, p, curLen);
  return n < 0 ? end : n;
}

let lo = 0;
let hi = 0;

/** True when the name at p follows no pointer into [lo, hi); false for a pointer there or a bad name. */
function nameAvoidsRegion(p: number, end: number): boolean {
  if (p >= end) return true; // short RDATA: nothing there to follow
  const buf = curBuf;
  const len = curLen;
  let lowest = p;
  for (let hops = 0; hops < 256; hops++) {
    if (p >= len) return false;
    const b = buf[p]!;
    if (b === 0) return true;
    if ((b & 0xc0) === 0xc0) {
      if (p + 1 >= len) return false;
      const target = ((b & 0x3f) << 8) | buf[p + 1]!;
      if (target >= lowest) return false;
      if (target >= lo && target < hi) return false;
      lowest = target;
      p = target;
      continue;
    }
    if ((b & 0xc0) !== 0) return false;
    p += 1 + b;
  }
  return false;
}

function nameHasNoPointer(p: number, end: number): boolean {
  if (p >= end) return true;
  const buf = curBuf;
  for (let hops = 0; hops < 256; hops++) {
    if (p >= end) return false;
    const b = buf[p]!;
    if (b === 0) return true;
    if ((b & 0xc0) !== 0) return false;
    p += 1 + b;
  }
  return false;
}

/** Types whose names the codec keeps as raw bytes: a pointer in them cannot be re-encoded. */
function rawTypeWithNames(t: number): boolean {
  switch (t) {
    case 3:
    case 4:
    case 7:
    case 8:
    case 9:
    case 14:
    case 17:
    case 18:
    case 21:
    case 26:
    case 36:
    case 24:
    case 46:
    case 47:
      return true;
    default:
      return false;
  }
}

/**
 * Reorders the records of the response msg[0..len) as described above. Returns null when the
 * records were reordered in place (or left as they are), or a new message to send instead
 * (the slow path re-encoded it).
 */
export function loadBalanceResponse(msg: Buffer, len: number, prefer: readonly Subnet[] | null, weights: WeightTable | null = null): Buffer | null {
  if (len < 12 || len > msg.length || (msg[3]! & 0x0f) !== 0) return null;
  const qd = u16(msg, 4);
  if (qd === 0) return null;
  const an = u16(msg, 6);
  const ns = u16(msg, 8);
  const total = an + ns + u16(msg, 10);
  if (total < 2 || total > MAX_RR) return null;
  let pos = 12;
  let qtype = -1;
  for (let i = 0; i < qd; i++) {
    pos = skipName(msg, pos, len);
    if (pos < 0 || pos + 4 > len) return null;
    if (qtype < 0) qtype = u16(msg, pos);
    pos += 4;
  }
  if (qtype === QType.AXFR || qtype === QType.IXFR) return null;
  for (let i = 0; i < total; i++) {
    starts[i] = pos;
    pos = skipName(msg, pos, len);
    if (pos < 0 || pos + 10 > len) return null;
    const t = u16(msg, pos);
    const rd = pos + 10;
    const end = rd + u16(msg, pos + 8);
    if (end > len) return null;
    if (t === TSIG) return null;
    if (t === QType.OPT && msg[pos + 4] !== 0) return null; // extended rcode: not NOERROR
    types[i] = t;
    rdStarts[i] = rd;
    ends[i] = end;
    order[i] = i;
    pos = end;
  }
  const bounds = sectionBounds;
  bounds[0] = 0;
  bounds[1] = an;
  bounds[2] = an + ns;
  bounds[3] = total;
  if (weights !== null) {
    // CoreDNS's weighted policy: answer and additional sections, A/AAAA/SRV questions only.
    if (qtype !== QType.A && qtype !== QType.AAAA && qtype !== QType.SRV) return null;
    for (let s = 0; s < 3; s += 2) {
      const from = bounds[s]!;
      const to = bounds[s + 1]!;
      if (to - from >= 2) weightedOrder(msg, len, from, to, weights);
    }
  } else {
    for (let s = 0; s < 3; s++) {
      const from = bounds[s]!;
      const to = bounds[s + 1]!;
      if (to - from < 2) continue;
      roundRobin(from, to);
      if (prefer !== null && s !== 1) preferOrder(msg, from, to, prefer);
    }
  }

  // Where records move, and whether any name points into what moves.
  curBuf = msg;
  curLen = len;
  let moved = false;
  let safe = true;
  for (let s = 0; s < 3 && safe; s++) {
    let first = -1;
    let last = -1;
    for (let k = bounds[s]!; k < bounds[s + 1]!; k++) {
      if (order[k] !== k) {
        if (first < 0) first = k;
        last = k;
      }
    }
    movedFirst[s] = first;
    movedLast[s] = last;
    if (first < 0) continue;
    moved = true;
    lo = starts[first]!;
    hi = ends[last]!;
    // From the first record: a name before the region may not point forward either.
    for (let j = 0; j < total && safe; j++) if (!eachName(j, nameAvoidsRegion)) safe = false;
  }
  if (!moved) return null;
  if (safe) {
    // Every section's region was found above (the loop ran to the end).
    for (let s = 0; s < 3; s++) {
      const first = movedFirst[s]!;
      const last = movedLast[s]!;
      if (first < 0) continue;
      const base = starts[first]!;
      msg.copy(scratch, 0, base, ends[last]!);
      let w = base;
      for (let k = first; k <= last; k++) {
        const i = order[k]!;
        w += scratch.copy(msg, w, starts[i]! - base, ends[i]! - base);
      }
    }
    return null;
  }
  return reencode(msg, len, total, bounds);
}

/** Slow path: the records in `order`, through the codec (which recompresses every name). */
function reencode(msg: Buffer, len: number, total: number, bounds: Int32Array): Buffer | null {
  for (let j = 0; j < total; j++) if (rawTypeWithNames(types[j]!) && !eachName(j, nameHasNoPointerRdataOnly(j))) return null;
  let m;
  try {
    m = decodeMessage(msg, len);
  } catch {
    return null;
  }
  // Original index -> decoded record (the OPT is not among the decoded additional records).
  const byIndex: (RR | null)[] = [];
  for (const rr of m.answer) byIndex.push(rr);
  for (const rr of m.authority) byIndex.push(rr);
  let d = 0;
  for (let i = bounds[2]!; i < total; i++) byIndex.push(types[i] === QType.OPT ? null : m.additional[d++]!);
  const pick = (s: number): RR[] => {
    const out: RR[] = [];
    for (let k = bounds[s]!; k < bounds[s + 1]!; k++) {
      const rr = byIndex[order[k]!];
      if (rr !== null && rr !== undefined) out.push(rr);
    }
    return out;
  };
  m.answer = pick(0);
  m.authority = pick(1);
  m.additional = pick(2);
  try {
    return encodeMessage(m);
  } catch {
    return null;
  }
}

/** The owner may be compressed (the codec re-encodes it); RDATA names of raw types may not. */
function nameHasNoPointerRdataOnly(j: number): (p: number, end: number) => boolean {
  const owner = starts[j]!;
  return (p, end) => p === owner || nameHasNoPointer(p, end);
}
