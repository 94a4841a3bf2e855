/**
 * The tray beside a relay that runs as a service: against a real `relaydesk serve` (the service's
 * process), the desktop app's tray (Electron's stand-in) shows that relay's state and drives it
 * over the control channel, and starts nothing of its own; with no relay answering it stays out.
 */
import type { MenuItemConstructorOptions } from 'electron';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { serviceDataDirs, serviceOfferText, startServiceTray } from '../../electron/main/service-tray.ts';
import { trayMenu, trayView, type TrayActions } from '../../electron/main/tray.ts';
import * as stub from '../fixtures/electron-stub.ts';
import { startExchangeEmulator } from '../fixtures/exchange-emulator.ts';
import { appStatus } from '../fixtures/relay-status.ts';
import { testCa } from '../fixtures/tls.ts';
import {
  createTeardown,
  eventually,
  freePort,
  sendMail,
  startRelay,
  tempDir,
  testConfig,
} from './harness.ts';

vi.mock('electron', () => import('../fixtures/electron-stub.ts'));

const teardown = createTeardown();
afterEach(teardown.run);

const MESSAGE = 'From: john@contoso.com\r\nTo: alice@contoso.com\r\nSubject: Scan\r\n\r\npage 1\r\n';

function menuOf(tray: stub.Tray): MenuItemConstructorOptions[] {
  return (tray.menu?.template ?? []) as MenuItemConstructorOptions[];
}

describe('the tray beside a relay service', () => {
  it('shows the running relay and its "Retry queued mail now" reaches it over the control channel', async () => {
    const emulator = teardown.closing(await startExchangeEmulator());
    // The first attempt is deferred, and the next would wait 10 minutes: only the tray's retry sends it now.
    emulator.script('message', '451 4.7.500 Server busy. Please try again later', { times: 1 });
    const port = await freePort();
    const relay = teardown.relay(
      await startRelay({
        config: testConfig(port, emulator.port, testCa.file, {
          queue: { minRetrySeconds: 600, maxRetrySeconds: 600 },
        }),
      }),
    );
    const nobody = teardown.dir(await tempDir());

    let quit = 0;
    const running = await startServiceTray({
      iconDir: '/icons',
      dataDirs: [nobody, relay.dataDir],
      quit: () => (quit += 1),
    });
    expect(running).not.toBeNull();
    teardown.add(() => running!.stop());
    expect(running!.remote.dataDir).toBe(relay.dataDir);
    const tray = stub.Tray.created.at(-1)!;
    expect(tray.tooltip).toBe(`RelayDesk service: relaying on 127.0.0.1:${port}, 0 delivered today`);
    const labels = menuOf(tray).map((item) => item.label);
    expect(labels).toContain('Runs as a service: works before anyone signs in');
    // The tray of a service has nothing that would start or pause a relay of its own.
    expect(labels).not.toContain('Pause');
    expect(labels).not.toContain('Send test email');

    const sent = await sendMail(port, { from: 'john@contoso.com', to: ['alice@contoso.com'], data: MESSAGE });
    expect(sent.final).toMatch(/^250/);
    await relay.waitForLog((r) => r.event === 'deferred', 30_000);
    await running!.remote.refresh();
    expect(tray.tooltip).toMatch(/^RelayDesk service: 1 message deferred/);

    const retry = menuOf(tray).find((item) => item.label === 'Retry queued mail now')!;
    expect(retry.enabled).toBe(true);
    (retry.click as () => void)();
    await emulator.waitForMessages(1, 30_000);
    await eventually(async () => (await running!.remote.refresh()).today.delivered === 1, 15_000);
    expect(tray.tooltip).toBe(`RelayDesk service: relaying on 127.0.0.1:${port}, 1 delivered today`);

    (menuOf(tray).find((item) => item.label === 'Quit (the service keeps relaying)')!.click as () => void)();
    expect(quit).toBe(1);
    expect(relay.process.exitCode).toBeNull();
  });

  it('stays out when no relay answers, and the service stopping shows as not answering', async () => {
    const nobody = teardown.dir(await tempDir());
    expect(await startServiceTray({ iconDir: '/icons', dataDirs: [nobody], quit: () => {} })).toBeNull();

    const emulator = teardown.closing(await startExchangeEmulator());
    const port = await freePort();
    const relay = teardown.relay(await startRelay({ config: testConfig(port, emulator.port, testCa.file) }));
    const running = (await startServiceTray({
      iconDir: '/icons',
      dataDirs: [relay.dataDir],
      quit: () => {},
    }))!;
    teardown.add(() => running.stop());
    await relay.stop();
    const status = await running.remote.refresh();
    expect(status).toMatchObject({ state: 'stopped', health: 'error' });
    expect(stub.Tray.created.at(-1)!.tooltip).toBe(
      'The RelayDesk service is not answering: see `relaydesk service status`',
    );
  });

  it('the app tray offers the service, with the commands for this OS', () => {
    const calls: string[] = [];
    const actions: TrayActions = {
      open: () => {},
      sendTestEmail: () => {},
      togglePause: () => {},
      startAtLogin: () => null,
      setStartAtLogin: () => {},
      offerService: () => calls.push('offer'),
      quit: () => {},
    };
    const view = trayView(appStatus({ summary: 'RelayDesk: relaying', listeners: [], allowedClients: [] }));
    const offer = trayMenu(view, actions, true).find((item) =>
      item.label?.startsWith('Run the relay as a service (works before anyone signs in)'),
    );
    (offer!.click as () => void)();
    expect(calls).toEqual(['offer']);

    expect(serviceDataDirs('C:\\Users\\ann\\AppData\\Roaming\\RelayDesk', 'win32')).toEqual([
      'C:\\ProgramData\\RelayDesk',
      'C:\\Users\\ann\\AppData\\Roaming\\RelayDesk',
    ]);
    const windows = serviceOfferText('C:\\Users\\ann\\AppData\\Roaming\\RelayDesk', 'win32');
    expect(windows).toContain(
      'copy "C:\\Users\\ann\\AppData\\Roaming\\RelayDesk\\config.json" "C:\\ProgramData\\RelayDesk"',
    );
    expect(windows).toContain('    relaydesk service install');
    expect(serviceOfferText('/home/ann/.config/RelayDesk', 'linux')).toContain(
      "sudo cp '/home/ann/.config/RelayDesk/config.json' '/var/lib/relaydesk/'",
    );
  });
});
