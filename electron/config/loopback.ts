/**
 * Which hosts are this computer. The config lets credentials and tokens travel unencrypted only to
 * loopback (a local test server or filter), the SMTP client checks the same rule against the address
 * it actually connected to, and the admin server answers to `localhost` when it listens on loopback.
 */
import net from 'node:net';

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 (also written `[::1]` or IPv4-mapped `::ffff:127.0.0.1`), and the name `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const address = host.replace(/^\[(.*)\]$/, '$1');
  if (address.toLowerCase() === 'localhost') return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped !== undefined) return LOOPBACK.check(mapped, 'ipv4');
  if (net.isIPv4(address)) return LOOPBACK.check(address, 'ipv4');
  return net.isIPv6(address) && LOOPBACK.check(address, 'ipv6');
}
