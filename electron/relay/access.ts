/**
 * Who may relay: the allow-list of device addresses and networks. Matching uses Node's BlockList,
 * which handles IPv4 and IPv6 CIDRs; an IPv4-mapped IPv6 peer (`::ffff:10.0.0.5`, what a dual-stack
 * listener reports) is matched by its IPv4 form.
 */
import { BlockList, isIP } from 'node:net';

export interface ClientMatcher {
  matches(ip: string): boolean;
  /** The entry (as written in the config) that matches, for logs and the sender map. */
  find(ip: string): string | null;
}

/** `::ffff:10.0.0.5` → `10.0.0.5`; anything else unchanged. */
export function normalizeIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return mapped ? mapped[1]! : ip;
}

/** Builds a matcher from `allowedClients`-style entries (addresses and CIDRs, already validated). */
export function createClientMatcher(entries: readonly string[]): ClientMatcher {
  const rules = entries.map((entry) => {
    const list = new BlockList();
    const [address, prefix] = entry.split('/');
    const family = isIP(address ?? '') === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(normalizeIp(address!), family);
    else list.addSubnet(address!, Number(prefix), family);
    return { entry, list };
  });

  const find = (ip: string): string | null => {
    const normalized = normalizeIp(ip);
    const family = isIP(normalized) === 6 ? 'ipv6' : 'ipv4';
    return rules.find((rule) => rule.list.check(normalized, family))?.entry ?? null;
  };

  return { find, matches: (ip) => find(ip) !== null };
}
