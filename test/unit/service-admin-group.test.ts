/**
 * The admin group `relaydesk service install` sets up on Linux, for real (root: CI runs as root):
 * created when missing, the installing administrator added (the one behind sudo or pkexec, not
 * root), and said so; and who that installing user is on each OS.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureLinuxAdminGroup, installingUser } from '../../electron/service/admin-group.ts';
import { accountsUnavailable, createUser, removeUser, type Account } from '../fixtures/system-accounts.ts';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((undo) => undo()));

const unavailable = accountsUnavailable();

describe('who installs', () => {
  it('is the user behind sudo, else behind pkexec, never root; on Windows DOMAIN\\user', () => {
    expect(installingUser({ SUDO_USER: 'anna', PKEXEC_UID: '0' }, 'linux')).toBe('anna');
    expect(installingUser({ USERDOMAIN: 'OFFICE', USERNAME: 'anna' }, 'win32')).toBe('OFFICE\\anna');
    expect(installingUser({ USERNAME: 'anna' }, 'win32')).toBe('anna');
    expect(installingUser({}, 'win32')).toBeNull();
  });

  // Skipped where accounts cannot be made (not Linux, not root): accountsUnavailable() says why.
  it.skipIf(unavailable !== null)('is found by the uid pkexec passes', () => {
    const user = createUser('rdt-pk');
    cleanups.push(() => removeUser(user));
    expect(installingUser({ PKEXEC_UID: String(user.uid) }, 'linux')).toBe(user.name);
    // Root (sudo -i, a root shell): nobody to add, and install says how to add one.
    expect(installingUser({ SUDO_USER: 'root' }, 'linux')).toBeNull();
  });
});

describe.skipIf(unavailable !== null)('the Linux admin group', () => {
  const members = (group: string) =>
    spawnSync('getent', ['group', group], { encoding: 'utf8' }).stdout.trim().split(':')[3]?.split(',') ?? [];

  it('is created when missing, with the installing user in it, and said so; a second install changes nothing', () => {
    const group = `rdt-adm-${randomBytes(3).toString('hex')}`;
    cleanups.push(() => void spawnSync('groupdel', [group]));
    const admin: Account = createUser('rdt-inst');
    cleanups.push(() => removeUser(admin));

    expect(ensureLinuxAdminGroup(group, admin.name)).toEqual({
      lines: [
        `Created the group ${group}: its members may see and drive the service.`,
        `Added ${admin.name} to ${group}: it counts from ${admin.name}'s next sign-in (or \`newgrp ${group}\` in a terminal).`,
      ],
      error: null,
    });
    expect(members(group)).toEqual([admin.name]);
    expect(ensureLinuxAdminGroup(group, admin.name)).toEqual({
      lines: [`${admin.name} is already in ${group}.`],
      error: null,
    });
    expect(ensureLinuxAdminGroup(group, null).lines).toEqual([
      `No user was added to ${group}: add an administrator with \`sudo usermod -aG ${group} NAME\`.`,
    ]);
  });

  it('stops with the reason when the user does not exist', () => {
    const group = `rdt-adm-${randomBytes(3).toString('hex')}`;
    cleanups.push(() => void spawnSync('groupdel', [group]));
    const result = ensureLinuxAdminGroup(group, 'no-such-user-rdt');
    expect(result.error).toMatch(
      new RegExp(`^usermod -aG ${group} no-such-user-rdt failed: .*no-such-user-rdt`),
    );
  });
});
