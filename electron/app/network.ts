/**
 * This computer's networks, for the wizard's "allowed devices" suggestion: the scanners and faxes
 * are almost always on the same subnet as the PC that runs RelayDesk.
 */
import { hostname, networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import type { NetworkSuggestion } from '../shared/ipc.ts';

/** `192.168.1.23` with netmask `255.255.255.0` → `192.168.1.0/24`. */
export function subnetOf(address: string, netmask: string): string {
  const octets = address.split('.').map(Number);
  const mask = netmask.split('.').map(Number);
  const network = octets.map((octet, i) => octet & (mask[i] ?? 0));
  const prefix = mask.reduce((bits, m) => bits + (m.toString(2).match(/1/g)?.length ?? 0), 0);
  return `${network.join('.')}/${prefix}`;
}

export function suggestNetworks(
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
  name: string = hostname(),
): NetworkSuggestion {
  const networks: NetworkSuggestion['networks'] = [];
  for (const [interfaceName, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) {
      // Link-local (169.254/16) means no DHCP answer: not where the devices are.
      if (info.family !== 'IPv4' || info.internal || info.address.startsWith('169.254.')) continue;
      networks.push({ interfaceName, address: info.address, subnet: subnetOf(info.address, info.netmask) });
    }
  }
  return { hostname: name, networks };
}
