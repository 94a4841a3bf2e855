/**
 * `relaydesk service` as an administrator runs it: the printed unit is one systemd accepts, a
 * wrong target is refused, and install says plainly when it cannot do the job here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './harness.ts';

const scratch = mkdtempSync(join(tmpdir(), 'relaydesk-service-cli-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('relaydesk service', () => {
  it('prints a systemd unit that systemd-analyze verify accepts, for this install', async () => {
    const dataDir = join(scratch, 'data dir 100%');
    const printed = await runCli(['service', 'print', '--for', 'systemd', '--data-dir', dataDir]);
    expect(printed.code).toBe(0);
    const unitPath = join(scratch, 'relaydesk.service');
    writeFileSync(unitPath, printed.stdout);
    const verified = spawnSync('systemd-analyze', ['verify', '--man=no', unitPath], { encoding: 'utf8' });
    expect({ status: verified.status, stderr: verified.stderr }).toEqual({ status: 0, stderr: '' });
    const bin = resolve(import.meta.dirname, '../../bin/relaydesk.js');
    expect(printed.stdout).toContain(
      `ExecStart="${process.execPath}" "${bin}" "serve" "--config" "${dataDir.replace('%', '%%')}/config.json"`,
    );
  });

  it('prints a launchd plist and a WinSW XML when asked for them', async () => {
    const plist = await runCli(['service', 'print', '--for', 'launchd', '--data-dir', '/opt/relay']);
    expect(plist.code).toBe(0);
    expect(plist.stdout).toContain('<string>/opt/relay/config.json</string>');
    const xml = await runCli(['service', 'print', '--for', 'windows', '--data-dir', 'D:\\Relay Desk']);
    expect(xml.code).toBe(0);
    expect(xml.stdout).toContain('--config &quot;D:\\Relay Desk\\config.json&quot;');
    expect(xml.stderr).toContain("The paths below are this machine's");
  });

  it('refuses an unknown target and --for with install', async () => {
    const unknown = await runCli(['service', 'print', '--for', 'upstart']);
    expect(unknown).toMatchObject({ code: 64, stdout: '' });
    expect(unknown.stderr).toContain('--for is one of systemd, launchd, windows');
    const foreign = await runCli(['service', 'install', '--for', 'windows']);
    expect(foreign.code).toBe(64);
    expect(foreign.stderr).toContain('--for goes with print only');
  });

  it.runIf(process.platform === 'linux' && !existsSync('/run/systemd/system'))(
    'install refuses clearly where systemd is not running, and writes nothing',
    async () => {
      const result = await runCli(['service', 'install', '--data-dir', join(scratch, 'x')]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('systemd is not running on this machine');
      expect(existsSync('/etc/systemd/system/relaydesk.service')).toBe(false);
    },
  );
});
