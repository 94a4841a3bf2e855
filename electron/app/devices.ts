/**
 * The devices the window lists and the one action on them: allowing a refused device, which is a
 * config change (one more entry in allowedClients) applied like any other.
 */
import { isIP } from 'node:net';
import { normalizeIp, type ClientMatcher } from '../relay/access.ts';
import type { Logger } from '../relay/log.ts';
import type { DeviceRecord } from '../relay/views.ts';
import type { ApplyResult, DeviceView } from '../shared/ipc.ts';
import type { AppConfig } from './config-apply.ts';

/** Each device seen, with whether the current allowedClients let it relay. */
export function deviceViews(records: readonly DeviceRecord[], matcher: ClientMatcher): DeviceView[] {
  return records.map((d) => ({
    ip: d.ip,
    firstSeen: d.firstSeen,
    lastSeen: d.lastSeen,
    count: d.count,
    lastSender: d.lastSender,
    allowed: matcher.matches(d.ip),
  }));
}

/** Adds `ip` to allowedClients (nothing to do when it is already allowed). */
export async function allowDevice(ip: string, appConfig: AppConfig, logger: Logger): Promise<ApplyResult> {
  const address = normalizeIp(ip);
  if (isIP(address) === 0) {
    return { ok: false, problems: [{ path: 'allowedClients', message: `${ip} is not an IP address` }] };
  }
  if (appConfig.matcher.matches(address)) return { ok: true, problems: [] };
  logger.info('device-allowed', { client: address });
  const { config } = appConfig;
  return appConfig.apply({ ...config, allowedClients: [...config.allowedClients, address] });
}
