/**
 * bind: IP literals and interface names (resolved to their addresses, link-local IPv6 left
 * out), `except`, and the errors for bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import type { SetupContext } from '../../plugin.ts';
import { parseCorefile } from '../../corefile/parser.ts';
import { TestEngine, setupContext } from '../../../test/lib/metrics-testing.ts';
import { type BindPlugin, bindSetup } from './setup.ts';

const engine = new TestEngine();

function ctx(): SetupContext {
  return setupContext(engine, { serverLabels: [], log: { info() {}, warn() {}, error() {} } });
}

function addresses(directive: string): string[] {
  const [block] = parseCorefile(`.:53 {\n  ${directive}\n}\n`, 'Corefile', {});
  return (bindSetup.setup(block!.directives[0]!, ctx()) as BindPlugin).addresses;
}

function setupError(directive: string): string {
  try {
    addresses(directive);
  } catch (err) {
    return (err as Error).message;
  }
  return assert.fail('setup accepted the directive');
}

function loAddresses(): string[] {
  const lo = networkInterfaces().lo;
  assert.ok(lo, 'this machine has a loopback interface named lo');
  return lo.filter((a) => !(a.family === 'IPv6' && a.address.startsWith('fe80'))).map((a) => a.address);
}

test('bind: IP literals, IPv6 with or without brackets, duplicates once', () => {
  assert.deepEqual(addresses('bind 169.254.20.10'), ['169.254.20.10']);
  assert.deepEqual(addresses('bind 169.254.20.10 10.96.0.10 fd00::10 [::1] 169.254.20.10'), ['169.254.20.10', '10.96.0.10', 'fd00::10', '::1']);
});

test('bind: an interface name gives its addresses', () => {
  const want = loAddresses();
  assert.deepEqual(addresses('bind lo'), want);
  assert.ok(want.includes('127.0.0.1'));
  // An interface plus one of its own addresses: listed once.
  assert.deepEqual(addresses('bind 127.0.0.1 lo'), ['127.0.0.1', ...want.filter((a) => a !== '127.0.0.1')]);
});

test('bind: link-local IPv6 addresses of an interface are skipped', () => {
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (!list || !list.some((a) => a.family === 'IPv6' && a.address.startsWith('fe80'))) continue;
    const got = addresses(`bind ${name}`);
    assert.ok(
      got.every((a) => !a.startsWith('fe80')),
      `${name}: ${got.join(' ')}`,
    );
  }
});

test('bind: except removes addresses, by literal or by interface', () => {
  assert.deepEqual(addresses('bind 127.0.0.1 127.0.0.2 127.0.0.3 {\n    except 127.0.0.2\n  }'), ['127.0.0.1', '127.0.0.3']);
  const lo = loAddresses();
  if (lo.length > 1) {
    assert.deepEqual(
      addresses('bind lo {\n    except 127.0.0.1\n  }'),
      lo.filter((a) => a !== '127.0.0.1'),
    );
  }
  assert.deepEqual(addresses('bind 127.0.0.9 lo {\n    except lo\n  }'), ['127.0.0.9']);
});

test('bind: errors name the line and the word', () => {
  assert.equal(setupError('bind'), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'bind'");
  assert.equal(setupError('bind 1.2.3.4.5'), 'Corefile:2 - Error during parsing: failed to bind on 1.2.3.4.5: not an IP address or a network interface name');
  assert.equal(
    setupError('bind no-such-iface0'),
    'Corefile:2 - Error during parsing: failed to bind on no-such-iface0: not an IP address or a network interface name',
  );
  assert.equal(
    setupError('bind 127.0.0.1 {\n    except 999.1.1.1\n  }'),
    'Corefile:3 - Error during parsing: failed to bind on 999.1.1.1: not an IP address or a network interface name',
  );
  assert.equal(
    setupError('bind 127.0.0.1 {\n    except\n  }'),
    "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'except'",
  );
  assert.equal(setupError('bind 127.0.0.1 {\n    exclude 127.0.0.1\n  }'), "Corefile:3 - Error during parsing: unknown property 'exclude'");
  assert.equal(setupError('bind 127.0.0.1 {\n    except 127.0.0.1\n  }'), 'Corefile:2 - Error during parsing: bind: no address left to listen on after except');
});

test('bind: setup only, the chain is unchanged', () => {
  const [block] = parseCorefile('.:53 {\n  bind 127.0.0.1\n}\n', 'Corefile', {});
  const p = bindSetup.setup(block!.directives[0]!, ctx());
  const next = { serve() {} };
  assert.equal(p.compose(next), next);
});
