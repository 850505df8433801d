/** Public API of the Corefile reader: parsing, server keys and setup helpers. */
export type { Directive, ServerAddress, ServerBlock, Token } from './types.ts';
export { CorefileError, CorefileErrorCode } from './errors.ts';
export { parseCorefile, MAX_IMPORT_EXPANSIONS, type ParseOptions } from './parser.ts';
export { substituteEnv, type Env } from './lexer.ts';
export { normalizeZone, parseServerKey, zoneMatches } from './address.ts';
export {
  argCountError,
  blockLines,
  durationArgMs,
  errorAt,
  expectArgs,
  intArg,
  noBlock,
  unknownPropertyError,
  type DurationArgOptions,
} from './setup-helpers.ts';
