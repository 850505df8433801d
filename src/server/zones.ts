/**
 * Zone routing uses the one wire-format matcher (src/wire/zone-match.ts): a query goes to the
 * block whose zone is the longest suffix of its qname. These names stay for src/engine.ts.
 */
export { ZoneMatcher as ZoneTable, type ZoneEntry as ZoneRoute } from '../wire/zone-match.ts';
