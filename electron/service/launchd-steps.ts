/**
 * The launchd daemon's install as commands for an administrator's Terminal: `relaydesk service
 * install` prints them on macOS (launchd has no installer to call), and the app's offer runs them
 * behind the administrator prompt (elevate.ts).
 */
import {
  LAUNCHD_LABEL,
  LAUNCHD_PLIST_PATH,
  LAUNCHD_USER,
  SERVICE_ADMIN_GROUP,
  SERVICE_CONTROL_DIR,
  type ServiceSpec,
} from './definitions.ts';
import { shellQuote as shellWord } from './elevate.ts';

/** `relaydesk`: the words that run this command line, where it is not on the PATH (the app's prompt). */
export function manualSteps(
  action: string,
  spec: ServiceSpec,
  adminUser: string | null = null,
  relaydesk = 'relaydesk',
): string {
  const printFlags = `--config ${shellWord(spec.configPath)} --data-dir ${shellWord(spec.dataDir)}`;
  const data = shellWord(spec.dataDir);
  const group = SERVICE_ADMIN_GROUP.launchd;
  const control = shellWord(SERVICE_CONTROL_DIR.launchd);
  const steps: Record<string, string[]> = {
    install: [
      `# 1. A hidden account for the relay (pick a free id below 500 if 480 is taken: dscl . -list /Users UniqueID)`,
      `sudo dscl . -create /Groups/${LAUNCHD_USER} PrimaryGroupID 480`,
      `sudo dscl . -create /Users/${LAUNCHD_USER} UniqueID 480`,
      `sudo dscl . -create /Users/${LAUNCHD_USER} PrimaryGroupID 480`,
      `sudo dscl . -create /Users/${LAUNCHD_USER} UserShell /usr/bin/false`,
      `sudo dscl . -create /Users/${LAUNCHD_USER} NFSHomeDirectory /var/empty`,
      `# 2. Its private data folder (put config.json in it)`,
      `sudo mkdir -p ${shellWord(`${spec.dataDir}/logs`)}`,
      `sudo chown -R ${LAUNCHD_USER}:${LAUNCHD_USER} ${data} && sudo chmod 700 ${data}`,
      `# 3. Who may see and drive it: the group ${group} (the relay joins it to hand its control folder over)`,
      `sudo dseditgroup -o create -r 'RelayDesk admins' ${group}`,
      `sudo dseditgroup -o edit -a ${LAUNCHD_USER} -t user ${group}`,
      ...(adminUser ? [`sudo dseditgroup -o edit -a ${shellWord(adminUser)} -t user ${group}`] : []),
      `sudo mkdir -p ${control}`,
      `sudo chown ${LAUNCHD_USER}:${group} ${control} && sudo chmod 750 ${control}`,
      `# 4. The daemon definition, then start it`,
      `${relaydesk} service print --for launchd ${printFlags} | sudo tee ${LAUNCHD_PLIST_PATH} >/dev/null`,
      `sudo chown root:wheel ${LAUNCHD_PLIST_PATH} && sudo chmod 644 ${LAUNCHD_PLIST_PATH}`,
      `sudo launchctl bootstrap system ${LAUNCHD_PLIST_PATH}`,
    ],
    uninstall: [
      `sudo launchctl bootout system/${LAUNCHD_LABEL}`,
      `sudo rm ${LAUNCHD_PLIST_PATH}`,
      `# the data folder ${data} is kept`,
    ],
    status: [`sudo launchctl print system/${LAUNCHD_LABEL}`],
  };
  return `${steps[action]!.join('\n')}\n`;
}
