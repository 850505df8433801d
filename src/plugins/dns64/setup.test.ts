import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDns64 } from './setup.ts';
import { directiveOf } from '../../../test/lib/metrics-testing.ts';
import { formatIPv6 } from '../../wire/codec.ts';

function shown(line: string): { prefix: string; translateAll: boolean; allowIpv4: boolean } {
  const o = parseDns64(directiveOf(line));
  return { prefix: `${formatIPv6(o.prefix.bytes)}/${o.prefix.length}`, translateAll: o.translateAll, allowIpv4: o.allowIpv4 };
}

test('dns64 setup: the valid forms of CoreDNS setup_test', () => {
  const ok: [string, string, boolean, boolean][] = [
    ['dns64', '64:ff9b::/96', false, false],
    ['dns64 64:dead::/96', '64:dead::/96', false, false],
    ['dns64 {\ntranslate_all\n}', '64:ff9b::/96', true, false],
    ['dns64 {\nprefix 64:ff9b::/96\n}', '64:ff9b::/96', false, false],
    ['dns64 {\nprefix 64:ff9b::/32\n}', '64:ff9b::/32', false, false],
    ['dns64 {\nprefix 2002:ac12:b083::/96\n}', '2002:ac12:b083::/96', false, false],
    ['dns64 {\nprefix 2002:c0a8:a88a::/48\n}', '2002:c0a8:a88a::/48', false, false],
    ['dns64 {\nallow_ipv4\n}', '64:ff9b::/96', false, true],
    ['dns64 {\nprefix 64:1337::/96\ntranslate_all\nallow_ipv4\n}', '64:1337::/96', true, true],
    // Host bits are masked off, as Go's ParseCIDR does.
    ['dns64 64:ff9b::1/96', '64:ff9b::/96', false, false],
    // With a PREFIX argument CoreDNS does not read the block.
    ['dns64 64:dead::/96 {\ntranslate_all\n}', '64:dead::/96', false, false],
  ];
  for (const [line, prefix, translateAll, allowIpv4] of ok) assert.deepEqual(shown(line), { prefix, translateAll, allowIpv4 }, line);
});

test('dns64 setup: each invalid form with its Corefile:N error text', () => {
  const bad: [string, string][] = [
    ['dns64 {\nprefix 64:ff9b::/52\n}', 'Corefile:3 - Error during parsing: invalid prefix length "64:ff9b::/52"'],
    ['dns64 {\nprefix 64:ff9b::/104\n}', 'Corefile:3 - Error during parsing: invalid prefix length "64:ff9b::/104"'],
    ['dns64 {\nprefix 64:ff9b::/24\n}', 'Corefile:3 - Error during parsing: invalid prefix length "64:ff00::/24"'], // masked, as Go prints the IPNet,
    ['dns64 {\nprefix 8.8.8.8/24\n}', 'Corefile:3 - Error during parsing: invalid netmask 32 IPv6 address: "8.8.8.0/24"'],
    ['dns64 foobar {\nprefix 64:ff9b::/96\n}', 'Corefile:2 - Error during parsing: invalid CIDR address: foobar'],
    ['dns64 foobar', 'Corefile:2 - Error during parsing: invalid CIDR address: foobar'],
    ['dns64 64:ff9b::/96 64:dead::/96', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '64:dead::/96'"],
    ['dns64 {\nfoobar\n}', "Corefile:3 - Error during parsing: unknown property 'foobar'"],
    ['dns64 {\nprefix\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'prefix'"],
    ['dns64 {\nprefix 64:ff9b::/96 extra\n}', "Corefile:3 - Error during parsing: unknown property 'extra'"],
    ['dns64 {\ntranslate_all yes\n}', "Corefile:3 - Error during parsing: unknown property 'yes'"],
  ];
  for (const [line, msg] of bad) assert.throws(() => parseDns64(directiveOf(line)), { message: msg }, line);
});
