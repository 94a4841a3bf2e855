/**
 * Who may see and drive a relay service: the members of a local admin group (SERVICE_ADMIN_GROUP),
 * which `relaydesk service install` creates, putting in it the administrator who installs, not the
 * root or elevated account that the install itself runs as.
 */
import { spawnSync } from 'node:child_process';
import { userInfo } from 'node:os';

/**
 * The user behind an elevated install: sudo says it in SUDO_USER, pkexec in PKEXEC_UID; on Windows
 * an elevated process is still the signed-in administrator's (same account, full token). Someone
 * who elevated with another account's password names themselves with --add-admin.
 */
export function installingUser(
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): string | null {
  if (platform === 'win32') {
    if (!env.USERNAME) return null;
    return env.USERDOMAIN ? `${env.USERDOMAIN}\\${env.USERNAME}` : env.USERNAME;
  }
  if (env.SUDO_USER && env.SUDO_USER !== 'root') return env.SUDO_USER;
  if (env.PKEXEC_UID && /^\d+$/.test(env.PKEXEC_UID) && env.PKEXEC_UID !== '0') {
    const found = spawnSync('getent', ['passwd', env.PKEXEC_UID], { encoding: 'utf8' });
    const name = found.status === 0 ? found.stdout.split(':')[0] : '';
    return name || null;
  }
  // Not elevated (macOS, where install prints the commands to run): the one asking.
  return process.getuid?.() === 0 ? null : userInfo().username;
}

export interface AdminGroupResult {
  /** What to tell the administrator, line by line. */
  lines: string[];
  /** Set when a step failed: the install stops there. */
  error: string | null;
}

/** Creates the Linux group when missing and adds `user` to it (groupadd, usermod from shadow-utils). */
export function ensureLinuxAdminGroup(group: string, user: string | null): AdminGroupResult {
  const run = (file: string, args: string[]) => spawnSync(file, args, { encoding: 'utf8' });
  const lines: string[] = [];
  // getent answers 2 for "no such group".
  const known = run('getent', ['group', group]);
  if (known.status === 2) {
    const made = run('groupadd', ['--system', group]);
    if (made.status !== 0)
      return { lines, error: `groupadd --system ${group} failed: ${made.stderr.trim()}` };
    lines.push(`Created the group ${group}: its members may see and drive the service.`);
  } else if (known.status !== 0) {
    return {
      lines,
      error: `getent group ${group} failed: ${known.stderr.trim() || `exit status ${known.status}`}`,
    };
  }
  const members = run('getent', ['group', group]).stdout.trim().split(':')[3]?.split(',') ?? [];
  if (user === null) {
    lines.push(
      `No user was added to ${group}: add an administrator with \`sudo usermod -aG ${group} NAME\`.`,
    );
  } else if (members.includes(user)) {
    lines.push(`${user} is already in ${group}.`);
  } else {
    const added = run('usermod', ['-aG', group, user]);
    if (added.status !== 0)
      return { lines, error: `usermod -aG ${group} ${user} failed: ${added.stderr.trim()}` };
    lines.push(
      `Added ${user} to ${group}: it counts from ${user}'s next sign-in (or \`newgrp ${group}\` in a terminal).`,
    );
  }
  return { lines, error: null };
}
