/** Public API of the Corefile reader: parsing, server keys and setup helpers. */
export type { Directive, ServerAddress, ServerBlock, Token } from './types.ts';
export { CorefileError, CorefileErrorCode, excerpt, MAX_QUOTED_CHARS, MAX_WHOLE_QUOTED_CHARS } from './errors.ts';
export { parseCorefile, parseCorefileAsync, MAX_IMPORT_EXPANSIONS, type ParseOptions } from './parser.ts';
export { DEFAULT_CONFIG_LIMITS, type ConfigLimits } from './limits.ts';
export { ConfigReadError, ConfigReadErrorCode, readConfigFile, readConfigFileSync } from './read.ts';
export { substituteEnv, type Env } from './lexer.ts';
export { normalizeZone, parseServerKey } from './address.ts';
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
