// The addon as built by native/build.mjs (npm ci's install script).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadUdpAddon } from './udp-native.ts';

const { addon, reason } = loadUdpAddon();

test('the addon is compiled against the headers of the Node.js that runs it', { skip: addon === null ? reason : false }, () => {
  // npm's own config (Debian's npm sets nodedir=/usr, the system Node's headers) must not win
  // over the headers native/build.mjs chooses: that once built it against libuv 1.46 for a
  // Node 24 running libuv 1.52.
  const running = process.versions.uv.split('.').slice(0, 2).join('.');
  assert.equal(addon!.UV_BUILD_VERSION, running);
});
