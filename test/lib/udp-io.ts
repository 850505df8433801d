/**
 * The UDP I/O paths (src/server/udp-native.ts) a listener test runs on: both when the addon
 * loads here, else dgram only (with a note). NODE_LOCAL_DNS_UDP_IO=dgram or =batched narrows
 * the run to one path; =batched fails when the addon does not load, so a run that must cover
 * the batched path cannot silently skip it.
 */
import { UdpIo, type UdpIoValue, loadUdpAddon } from '../../src/server/udp-native.ts';

export function udpIoPaths(): UdpIoValue[] {
  const want = process.env.NODE_LOCAL_DNS_UDP_IO;
  if (want === UdpIo.DGRAM) return [UdpIo.DGRAM];
  const { addon, reason } = loadUdpAddon();
  if (want === UdpIo.BATCHED) {
    if (addon === null) throw new Error(`NODE_LOCAL_DNS_UDP_IO=batched but the UDP addon does not load: ${reason}`);
    return [UdpIo.BATCHED];
  }
  if (addon === null) {
    console.log(`# UDP addon unavailable (${reason}): the dgram path only`);
    return [UdpIo.DGRAM];
  }
  return [UdpIo.DGRAM, UdpIo.BATCHED];
}

/** The environment that makes a spawned agent serve UDP on `io`. */
export function udpIoEnv(io: UdpIoValue): Record<string, string> {
  return { NODE_LOCAL_DNS_UDP_IO: io };
}
