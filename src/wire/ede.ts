/**
 * Extended DNS Errors (RFC 8914): the EDNS option (code 15) whose data is a 16-bit INFO-CODE
 * followed by EXTRA-TEXT in UTF-8 (not NUL-terminated).
 */
import type { EdnsOption } from './codec.ts';

export const EDE_OPTION_CODE = 15;

/** The EDE option for an info code (0..65535) and optional extra text. */
export function edeOption(infoCode: number, extraText = ''): EdnsOption {
  if (!Number.isInteger(infoCode) || infoCode < 0 || infoCode > 0xffff) throw new RangeError(`EDE info code out of range: ${infoCode}`);
  const text = Buffer.from(extraText, 'utf8');
  if (text.length > 0xffff - 2) throw new RangeError('EDE extra text too long');
  const data = new Uint8Array(2 + text.length);
  data[0] = infoCode >> 8;
  data[1] = infoCode & 0xff;
  data.set(text, 2);
  return { code: EDE_OPTION_CODE, data };
}

/** Reads an EDE option's data: null when shorter than the 2-byte info code. */
export function parseEde(data: Uint8Array): { infoCode: number; extraText: string } | null {
  if (data.length < 2) return null;
  return { infoCode: (data[0]! << 8) | data[1]!, extraText: Buffer.from(data.subarray(2)).toString('utf8') };
}
