/** Errors raised by the wire codec. `code` is stable; messages are for logs. */
export const WireErrorCode = {
  TRUNCATED: 'ERR_DNS_TRUNCATED',
  BAD_POINTER: 'ERR_DNS_BAD_POINTER',
  NAME_TOO_LONG: 'ERR_DNS_NAME_TOO_LONG',
  BAD_LABEL: 'ERR_DNS_BAD_LABEL',
  BAD_NAME_TEXT: 'ERR_DNS_BAD_NAME_TEXT',
  TOO_LARGE: 'ERR_DNS_TOO_LARGE',
  /** A record whose RDATA does not match its type's format (length, fields), or a second OPT. */
  BAD_RDATA: 'ERR_DNS_BAD_RDATA',
} as const;
export type WireErrorCodeValue = (typeof WireErrorCode)[keyof typeof WireErrorCode];

export class WireError extends Error {
  readonly code: WireErrorCodeValue;
  readonly offset: number;
  constructor(code: WireErrorCodeValue, message: string, offset = -1) {
    super(message);
    this.name = 'WireError';
    this.code = code;
    this.offset = offset;
  }
}
