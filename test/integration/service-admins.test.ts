/**
 * Who may drive a relay that runs as a service under an account of its own: a real `relaydesk serve`
 * runs as a throwaway service account in the admin group (as systemd's SupplementaryGroups= puts
 * it), with its data folder private (0700) and its group channel in a folder of its own (as
 * systemd's RuntimeDirectory= makes it); `relaydesk status` and `queue` run as other real accounts,
 * one in the group and one not.
 */
import { chown, mkdir, mkdtemp, chmod, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { groupControlPath } from '../../electron/relay/control.ts';
import { startExchangeEmulator } from '../fixtures/exchange-emulator.ts';
import {
  accountsUnavailable,
  createGroup,
  createUser,
  removeGroup,
  removeUser,
  runNodeAs,
  runRelaydeskAs,
  spawnRelaydeskAs,
  type Account,
} from '../fixtures/system-accounts.ts';
import { testCa } from '../fixtures/tls.ts';
import { createTeardown, eventually, freePort, sendMail, testConfig, UPSTREAM_PASSWORD } from './harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

const MESSAGE = 'From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: Scan\r\n\r\npage 1\r\n';
const unavailable = accountsUnavailable();

describe.skipIf(unavailable !== null)(
  `a service's admin group${unavailable ? ` (${unavailable})` : ''}`,
  () => {
    it('lets a member see and drive the service, refuses a non-member naming the group, keeps the data folder private', async () => {
      const admins = createGroup('rdt-admins');
      teardown.add(() => removeGroup(admins));
      const accounts: Account[] = [];
      const user = (prefix: string) => {
        const account = createUser(prefix);
        accounts.push(account);
        return account;
      };
      teardown.add(() => accounts.forEach(removeUser));
      const service = user('rdt-svc');
      const member = user('rdt-member');
      const outsider = user('rdt-out');

      // As systemd lays it out: /var/lib/relaydesk 0700 and /run/relaydesk, both the service's.
      const base = await mkdtemp(join(tmpdir(), 'relaydesk-admins-'));
      teardown.add(() => rm(base, { recursive: true, force: true }));
      await chmod(base, 0o755);
      const dataDir = join(base, 'lib');
      const controlDir = join(base, 'run');
      for (const dir of [dataDir, controlDir]) {
        await mkdir(dir, { mode: 0o700 });
        await chown(dir, service.uid, service.gid);
      }

      const emulator = teardown.closing(await startExchangeEmulator());
      // Deferred once, the next try 10 minutes away: only a flush from the member sends it now.
      emulator.script('message', '451 4.7.500 Server busy. Please try again later', { times: 1 });
      const port = await freePort();
      const configPath = join(dataDir, 'config.json');
      const config = testConfig(port, emulator.port, testCa.file, {
        queue: { minRetrySeconds: 600, maxRetrySeconds: 600 },
      });
      await writeFile(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
      await chown(configPath, service.uid, service.gid);

      const env = { RELAYDESK_CONTROL_DIR: controlDir, HOME: base, XDG_CONFIG_HOME: base };
      const relay = spawnRelaydeskAs(
        service,
        [admins.gid],
        ['serve', '--config', configPath, '--data-dir', dataDir],
        {
          ...env,
          RELAYDESK_UPSTREAM_PASSWORD: UPSTREAM_PASSWORD,
          RELAYDESK_CONTROL_GROUP: admins.name,
        },
      );
      const exited = new Promise((resolve) => relay.on('exit', resolve));
      teardown.add(async () => {
        relay.kill('SIGKILL');
        await exited;
      });
      let relayOutput = '';
      relay.stdout!.on('data', (chunk: Buffer) => (relayOutput += chunk.toString()));
      relay.stderr!.on('data', (chunk: Buffer) => (relayOutput += chunk.toString()));
      await eventually(() => relayOutput.includes('"event":"started"'), 20_000).catch(() => {
        throw new Error(`relaydesk serve did not start as ${service.name}:\n${relayOutput}`);
      });

      const sent = await sendMail(port, {
        from: 'john@contoso.com',
        to: ['alice@contoso.com'],
        data: MESSAGE,
      });
      expect(sent.final).toMatch(/^250/);
      await eventually(() => relayOutput.includes('"event":"deferred"'), 30_000);

      // The data folder stays the service's alone; the channel's folder and socket are the group's.
      expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
      const folder = await stat(controlDir);
      expect({ gid: folder.gid, mode: folder.mode & 0o777 }).toEqual({ gid: admins.gid, mode: 0o750 });
      const socket = await stat(groupControlPath(dataDir, env));
      expect({ gid: socket.gid, mode: socket.mode & 0o777 }).toEqual({ gid: admins.gid, mode: 0o660 });

      const asMember = (args: string[]) =>
        runRelaydeskAs(member, [admins.gid], [...args, '--data-dir', dataDir], env);
      const status = await asMember(['status']);
      expect(status.stdout).toContain(`RelayDesk: running (pid ${relay.pid}`);
      expect(status.stdout).toMatch(/Queue: .*1 deferred/);
      const listed = await asMember(['queue', 'list']);
      expect(listed).toMatchObject({ code: 0 });
      expect(listed.stdout).toContain('alice@contoso.com');
      const flushed = await asMember(['queue', 'flush']);
      expect(flushed).toMatchObject({ code: 0, stdout: 'Retrying 1 message(s) now.\n' });
      await emulator.waitForMessages(1, 30_000);

      // The desktop app's tray, as the member and as the outsider: what it shows, and its retry.
      const tray = (account: Account, groups: number[]) =>
        runNodeAs(
          account,
          groups,
          ['--import', 'tsx', 'test/fixtures/service-remote-child.ts', dataDir],
          env,
        );
      const memberTray = await tray(member, [admins.gid]);
      expect(JSON.parse(memberTray.stdout)).toMatchObject({
        state: 'running',
        summary: expect.stringMatching(/^RelayDesk service: /),
        startError: null,
        flushed: 0,
      });
      const outsiderTray = await tray(outsider, []);
      expect(JSON.parse(outsiderTray.stdout)).toMatchObject({
        state: 'stopped',
        summary: "The RelayDesk service's control channel does not admit this account",
        flushed: null,
      });
      expect(JSON.parse(outsiderTray.stdout).startError).toContain(
        `Only members of the group "${admins.name}" may drive the RelayDesk service`,
      );

      const asOutsider = (args: string[]) =>
        runRelaydeskAs(outsider, [], [...args, '--data-dir', dataDir], env);
      const joinHint = `sudo usermod -aG ${admins.name} ${outsider.name}`;
      const refusedStatus = await asOutsider(['status']);
      expect(refusedStatus.code).toBe(2);
      expect(refusedStatus.stderr).toContain(
        `Only members of the group "${admins.name}" may drive the RelayDesk service`,
      );
      expect(refusedStatus.stderr).toContain(joinHint);
      expect(refusedStatus.stdout).toBe('');
      const refusedFlush = await asOutsider(['queue', 'flush']);
      expect(refusedFlush.code).toBe(1);
      expect(refusedFlush.stderr).toContain(joinHint);

      // The outsider's own data folder is theirs to ask about: the group's folder, closed to them,
      // does not stand in the way.
      const ownFolder = join(base, 'outsider');
      await mkdir(ownFolder, { mode: 0o700 });
      await chown(ownFolder, outsider.uid, outsider.gid);
      const ownStatus = await runRelaydeskAs(outsider, [], ['status', '--data-dir', ownFolder], env);
      expect(ownStatus.stdout).toContain(`RelayDesk: not running (data folder ${ownFolder})`);
      expect(ownStatus.stderr).toBe('');

      // The service's own account: through the group channel, and through the data folder's own
      // (the folder of group channels elsewhere) as before.
      const own = await runRelaydeskAs(service, [admins.gid], ['status', '--data-dir', dataDir], env);
      expect(own.stdout).toContain('RelayDesk: running');
      const ownPrivate = await runRelaydeskAs(service, [], ['status', '--data-dir', dataDir], {
        ...env,
        RELAYDESK_CONTROL_DIR: join(base, 'elsewhere'),
      });
      expect(ownPrivate.stdout).toContain('RelayDesk: running');
    });
  },
);
