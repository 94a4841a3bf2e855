/**
 * The desktop app when the relay runs as a service: a tray that shows the service and drives it over
 * the control channel (app/service-remote.ts) instead of a second relay; and the offer to run the
 * relay as a service, which says how (installing one needs an administrator's rights and prompt).
 */
import { dialog } from 'electron';
import { createServiceRemote, serviceAnswers, type ServiceRemote } from '../app/service-remote.ts';
import { DEFAULT_SERVICE_DATA_DIR, type ServiceTarget } from '../service/definitions.ts';
import { createServiceTray, type TrayController } from './tray.ts';

function serviceTarget(platform: NodeJS.Platform): ServiceTarget {
  if (platform === 'win32') return 'windows';
  if (platform === 'darwin') return 'launchd';
  return 'systemd';
}

/** The data folders a service's relay may answer on: the system one, then the app's own. */
export function serviceDataDirs(appDataDir: string, platform: NodeJS.Platform = process.platform): string[] {
  return [...new Set([DEFAULT_SERVICE_DATA_DIR[serviceTarget(platform)], appDataDir])];
}

export interface ServiceTrayOptions {
  iconDir: string;
  dataDirs: string[];
  quit: () => void;
}

export interface RunningServiceTray {
  remote: ServiceRemote;
  tray: TrayController;
  stop(): void;
}

/** Starts the service's tray when a relay answers on one of `dataDirs`; null when none does. */
export async function startServiceTray(options: ServiceTrayOptions): Promise<RunningServiceTray | null> {
  for (const dataDir of options.dataDirs) {
    // A service whose channel refuses this account is still there: a relay started here would only
    // collide with it on port 25, so the tray shows it as it can.
    if ((await serviceAnswers(dataDir)) === 'absent') continue;
    const remote = createServiceRemote(dataDir);
    const tray = createServiceTray(
      options.iconDir,
      { retryNow: () => void remote.flush(), quit: options.quit },
      await remote.refresh(),
    );
    remote.events.on('status', (status) => tray.update(status));
    const unwatch = remote.watch();
    return {
      remote,
      tray,
      stop() {
        unwatch();
        tray.destroy();
      },
    };
  }
  return null;
}

/** What "Run the relay as a service" says: the commands, and why they are not run from here. */
export function serviceOfferText(appDataDir: string, platform: NodeJS.Platform = process.platform): string {
  const target = serviceTarget(platform);
  const serviceDir = DEFAULT_SERVICE_DATA_DIR[target];
  const steps =
    platform === 'win32'
      ? [
          'In a Command Prompt opened with "Run as administrator", after quitting RelayDesk:',
          `    mkdir "${serviceDir}"`,
          `    copy "${appDataDir}\\config.json" "${serviceDir}"`,
          '    relaydesk service install',
        ]
      : [
          platform === 'darwin'
            ? 'In Terminal, after quitting RelayDesk:'
            : 'In a terminal, after quitting RelayDesk:',
          `    sudo mkdir -p '${serviceDir}'`,
          `    sudo cp '${appDataDir}/config.json' '${serviceDir}/'`,
          '    sudo relaydesk service install',
        ];
  return [
    'As a service the relay starts with the computer and works before anyone signs in (after Windows ' +
      'Update restarts it at night, say). Installing a service needs an administrator.',
    '',
    ...steps,
    '',
    'The service has no keychain: give it the upstream password as docs/service.md says ("Where the ' +
      'upstream password goes"). Start RelayDesk again afterwards: its tray then shows the service ' +
      'instead of running a second relay.',
  ].join('\n');
}

export async function offerService(appDataDir: string): Promise<void> {
  await dialog.showMessageBox({
    type: 'info',
    title: 'Run the relay as a service',
    message: 'Run the relay as a service (works before anyone signs in)',
    detail: serviceOfferText(appDataDir),
  });
}
