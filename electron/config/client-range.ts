/**
 * How much of the Internet an `allowedClients` range lets relay. A range wider than one IPv4 /8 or one
 * IPv6 /32 is almost always a typo or a shortcut that turns RelayDesk into an open relay, so validation
 * refuses it unless the admin sets `allowWideClientRanges`. IPv4-mapped IPv6 ranges (`::ffff:0:0/96`)
 * count as the IPv4 addresses they cover, since the matcher (Node's BlockList) lets IPv4 peers match them.
 */
import net from 'node:net';

export type RangeWidth =
  /** Within one IPv4 /8 or one IPv6 /32. */
  | { kind: 'narrow' }
  /** Every IPv4 address (an IPv6 range that holds ::ffff:0:0/96): an open relay, like 0.0.0.0/0. */
  | { kind: 'every-ipv4'; description: string }
  /** Wider than the limit: the description says how much it covers. */
  | { kind: 'wide'; description: string };

/** The widest range accepted without `allowWideClientRanges`: one /8 for IPv4, one /32 for IPv6. */
const IPV4_WIDEST_PREFIX = 8;
const IPV6_WIDEST_PREFIX = 32;
const MAPPED_PREFIX = 96;
/** ::ffff:0:0, the network of IPv4-mapped addresses (RFC 4291 section 2.5.5.2). */
const MAPPED_NETWORK = 0xffffn << 32n;

function ipv6ToBigInt(address: string): bigint {
  let text = address;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...tailGroups];
  return groups.reduce((value, group) => (value << 16n) | BigInt(parseInt(group, 16)), 0n);
}

function ipv4Text(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => Number((value >> shift) & 0xffn)).join('.');
}

function addressCount(bits: number): string {
  return bits <= 52 ? (2 ** bits).toLocaleString('en-US') : `2^${bits}`;
}

function describeIpv4(prefix: number): string {
  return `covers ${addressCount(32 - prefix)} addresses (${2 ** (IPV4_WIDEST_PREFIX - prefix)} /8 networks)`;
}

/** How wide `address/prefix` is; `address` is a valid IP address (validation checked it). */
export function rangeWidth(address: string, prefix: number): RangeWidth {
  if (net.isIP(address) === 4) {
    return prefix >= IPV4_WIDEST_PREFIX
      ? { kind: 'narrow' }
      : { kind: 'wide', description: describeIpv4(prefix) };
  }
  const hostBits = BigInt(128 - prefix);
  const network = (ipv6ToBigInt(address) >> hostBits) << hostBits;
  if (prefix <= MAPPED_PREFIX && (MAPPED_NETWORK >> hostBits) << hostBits === network) {
    return {
      kind: 'every-ipv4',
      description: 'covers every IPv4 address (IPv4-mapped IPv6, ::ffff:0:0/96, matches IPv4 devices)',
    };
  }
  if (prefix > MAPPED_PREFIX && network >> 32n === 0xffffn) {
    const ipv4Prefix = prefix - MAPPED_PREFIX;
    if (ipv4Prefix >= IPV4_WIDEST_PREFIX) return { kind: 'narrow' };
    const ipv4 = `${ipv4Text(network & 0xffffffffn)}/${ipv4Prefix}`;
    return { kind: 'wide', description: `is the IPv4 range ${ipv4}, which ${describeIpv4(ipv4Prefix)}` };
  }
  if (prefix >= IPV6_WIDEST_PREFIX) return { kind: 'narrow' };
  return {
    kind: 'wide',
    description: `covers ${addressCount(128 - prefix)} addresses (${addressCount(IPV6_WIDEST_PREFIX - prefix)} /32 networks)`,
  };
}
