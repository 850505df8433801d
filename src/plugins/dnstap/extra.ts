/**
 * dnstap's `extra` field: a format expanded per message as CoreDNS's replacer does for
 * requests (no response is known at that point): `{/label}` is the query's metadata (see
 * the metadata plugin), `{type}`, `{name}`, `{class}`, `{proto}`, `{remote}`, `{port}`,
 * `{size}`, `{>id}`, `{>opcode}`, `{>do}`, `{>bufsize}`, `{server}` describe the query;
 * response placeholders (`{rcode}`, `{rsize}`, `{duration}`, `{>rflags}`) print `-`.
 * Unknown placeholders stay as written.
 */
import type { Request } from '../../server/request.ts';
import { className, typeName } from '../../wire/codes.ts';
import { EMPTY_VALUE, metadataValue } from '../metadata/replace.ts';

export type ExtraFormat = (req: Request) => string;

const REQUEST: Record<string, (r: Request) => string> = {
  '{type}': (r) => typeName(r.qtype),
  '{name}': (r) => r.name().toLowerCase(),
  '{class}': (r) => className(r.qclass),
  '{proto}': (r) => (r.proto === 1 ? 'tcp' : 'udp'),
  '{remote}': (r) => (r.family === 6 ? `[${r.remoteAddress}]` : r.remoteAddress),
  '{port}': (r) => String(r.remotePort),
  '{size}': (r) => String(r.msgLen),
  '{>id}': (r) => String(r.id),
  '{>opcode}': (r) => String((r.flags >> 11) & 0xf),
  '{>do}': (r) => String(r.dnssecOk),
  '{>bufsize}': (r) => String(r.proto === 1 ? 65535 : r.udpSize),
  '{server}': (r) => r.server,
  '{rcode}': () => EMPTY_VALUE,
  '{rsize}': () => EMPTY_VALUE,
  '{duration}': () => EMPTY_VALUE,
  '{>rflags}': () => EMPTY_VALUE,
};

export function compileExtra(format: string): ExtraFormat {
  const parts: (string | ((r: Request) => string))[] = [];
  const re = /\{\/([^{}]+)\}|\{>?[a-z]+\}/g;
  let last = 0;
  for (let m = re.exec(format); m !== null; m = re.exec(format)) {
    if (m.index > last) parts.push(format.slice(last, m.index));
    const label = m[1];
    if (label !== undefined) parts.push((r) => metadataValue(r, label));
    else parts.push(REQUEST[m[0]] ?? m[0]);
    last = m.index + m[0].length;
  }
  if (last < format.length) parts.push(format.slice(last));
  if (parts.every((p) => typeof p === 'string')) return () => format;
  return (req) => {
    let s = '';
    for (const p of parts) s += typeof p === 'string' ? p : p(req);
    return s;
  };
}
