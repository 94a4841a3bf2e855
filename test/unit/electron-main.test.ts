import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IpcMain, MenuItemConstructorOptions } from 'electron';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHandlers } from '../../electron/app/handlers.ts';
import { healthOf, summaryOf, type HealthInput } from '../../electron/app/health.ts';
import { createRelayService, type RelayService } from '../../electron/app/service.ts';
import { registerIpc } from '../../electron/main/ipc.ts';
import { testEmailNotice, showNotice } from '../../electron/main/notifications.ts';
import { rendererFile } from '../../electron/main/protocol.ts';
import { createTray, trayMenu, trayView, type TrayActions } from '../../electron/main/tray.ts';
import { APP_URL, createMainWindow, isTrustedSender } from '../../electron/main/window.ts';
import { verifyLanPassword } from '../../electron/relay/lan-auth.ts';
import { createLogger } from '../../electron/relay/log.ts';
import { createMemoryStore } from '../../electron/secrets/index.ts';
import { CHANNELS, PayloadError, type AppStatus, type RelayDeskApi } from '../../electron/shared/ipc.ts';
import * as stub from '../fixtures/electron-stub.ts';

vi.mock('electron', () => import('../fixtures/electron-stub.ts'));

const diagnosis = {
  id: 'auth-failed',
  category: 'credentials' as const,
  action: 'hold' as const,
  class: 'relay' as const,
  title: 'Sign-in refused',
  explanation: 'The password is wrong.',
  fix: 'Enter it again.',
  powershell: null,
  advice: 'Enter it again.',
  actions: [],
  commands: [],
  answeredBy: 'server' as const,
};

function healthInput(overrides: Partial<HealthInput> = {}): HealthInput {
  return {
    state: 'running',
    startError: null,
    upstream: {
      description: 'smtp.office365.com:587',
      state: 'ok',
      lastSuccessAt: 1,
      lastSuccessReply: '250 2.0.0 OK',
      lastError: null,
      hold: null,
    },
    queue: { queued: 0, active: 0, deferred: 0, held: 0, failed: 0 },
    listeners: [{ host: '0.0.0.0', port: 25 }],
    deliveredToday: 4,
    oldestWaitingAt: null,
    now: 1_000_000_000,
    ...overrides,
  };
}

function status(input: HealthInput): AppStatus {
  return {
    state: input.state,
    health: healthOf(input),
    summary: summaryOf(input),
    startError: input.startError,
    listeners: input.listeners.map((l) => ({ ...l, tls: 'none' })),
    upstream: input.upstream,
    queue: input.queue,
    today: { date: '2026-11-29', accepted: 4, delivered: 4, deferred: 0, failed: 0, denied: 0 },
    devices: [],
    allowedClients: ['10.0.0.0/24'],
  };
}

function actions(startAtLogin: boolean | null = false) {
  const calls: string[] = [];
  const recorded: TrayActions = {
    open: () => calls.push('open'),
    sendTestEmail: () => calls.push('test'),
    togglePause: () => calls.push('pause'),
    startAtLogin: () => startAtLogin,
    setStartAtLogin: (on) => calls.push(`login:${on}`),
    quit: () => calls.push('quit'),
  };
  return { calls, recorded };
}

const labels = (items: MenuItemConstructorOptions[]) => items.map((i) => i.label).filter(Boolean);

describe('tray state from relay state', () => {
  it('is healthy while mail flows, with a one-line tooltip', () => {
    const view = trayView(status(healthInput()));
    expect(view).toEqual({
      icon: 'ok',
      tooltip: 'RelayDesk: relaying on 0.0.0.0:25, 4 delivered today',
      paused: false,
      signedIn: null,
    });
  });

  it('needs attention for deferred mail, failed mail, or mail stuck for 10 minutes', () => {
    const deferred = healthInput({
      queue: { queued: 0, active: 0, deferred: 2, held: 0, failed: 0 },
      upstream: {
        ...healthInput().upstream,
        state: 'error',
        lastError: { at: 1, reply: '451 4.7.500 Server busy', diagnosis },
      },
    });
    expect(trayView(status(deferred))).toMatchObject({
      icon: 'attention',
      tooltip: expect.stringContaining('2 messages deferred (451 4.7.500'),
    });
    expect(healthOf(healthInput({ queue: { queued: 0, active: 0, deferred: 0, held: 0, failed: 1 } }))).toBe(
      'attention',
    );
    const stuck = healthInput({
      queue: { queued: 1, active: 0, deferred: 0, held: 0, failed: 0 },
      oldestWaitingAt: 1_000_000_000 - 11 * 60_000,
    });
    expect(healthOf(stuck)).toBe('attention');
    expect(healthOf({ ...stuck, oldestWaitingAt: 1_000_000_000 - 60_000 })).toBe('ok');
  });

  it('is in error when the upstream is held on a sign-in failure or the listener is down', () => {
    const held = healthInput({
      upstream: {
        ...healthInput().upstream,
        state: 'held',
        hold: { since: 1, reason: '535 5.7.3', diagnosis, retryAt: 2 },
      },
    });
    expect(trayView(status(held))).toMatchObject({
      icon: 'error',
      tooltip: 'Delivery on hold: Sign-in refused',
    });
    const down = healthInput({
      state: 'failed',
      startError: 'Port 25 on 0.0.0.0 is already in use',
      listeners: [],
    });
    expect(trayView(status(down))).toMatchObject({
      icon: 'error',
      tooltip: expect.stringContaining('already in use'),
    });
  });

  it('shows paused, and the menu offers Resume instead of Pause', () => {
    const paused = trayView(status(healthInput({ state: 'paused' })));
    expect(paused).toMatchObject({ icon: 'paused', paused: true });
    const menu = trayMenu(paused, actions().recorded, true);
    expect(labels(menu)).toContain('Resume');
    expect(menu.find((i) => i.label === 'Send test email')?.enabled).toBe(false);
  });

  it('has the menu the issue asks for, and each item does its action', () => {
    const { calls, recorded } = actions(false);
    const menu = trayMenu(trayView(status(healthInput())), recorded, true);
    expect(labels(menu)).toEqual([
      'RelayDesk: relaying on 0.0.0.0:25, 4 delivered today',
      'Open RelayDesk',
      'Send test email',
      'Pause',
      'Start at login',
      'Quit RelayDesk',
    ]);
    const click = (label: string, checked = false) =>
      (menu.find((i) => i.label === label)?.click as (item: { checked: boolean }) => void)({ checked });
    click('Open RelayDesk');
    click('Send test email');
    click('Pause');
    click('Start at login', true);
    click('Quit RelayDesk');
    expect(calls).toEqual(['open', 'test', 'pause', 'login:true', 'quit']);
  });

  it('leaves out Start at login where there is no way to start at login', () => {
    const menu = trayMenu(trayView(status(healthInput())), actions(null).recorded, true);
    expect(labels(menu)).not.toContain('Start at login');
  });

  it('switches the tray picture only when the health changes, and always updates the tooltip', () => {
    const tray = createTray('/icons', actions().recorded, status(healthInput()));
    const native = stub.Tray.created.at(-1)!;
    // Windows takes the .ico (every size in one file), Linux the PNG.
    const ext = process.platform === 'win32' ? 'ico' : 'png';
    expect(native.image.path).toBe(join('/icons', `tray-ok.${ext}`));
    tray.update(status(healthInput({ deliveredToday: 5 })));
    expect(native.imageChanges).toBe(0);
    expect(native.tooltip).toContain('5 delivered today');
    tray.update(status(healthInput({ state: 'paused' })));
    expect(native.image.path).toBe(join('/icons', `tray-paused.${ext}`));
    tray.destroy();
    expect(native.destroyed).toBe(true);
  });

  it('says in the menu who is signed in with Microsoft, and when nobody is (delegated sign-in only)', () => {
    const labels = (menu: ReturnType<typeof trayMenu>) => menu.map((item) => item.label);
    const plain = status(healthInput());
    expect(labels(trayMenu(trayView(plain), actions().recorded, true))).not.toContainEqual(
      expect.stringMatching(/signed in/i),
    );
    const signedIn: AppStatus = {
      ...plain,
      signedIn: {
        username: 'john@contoso.com',
        name: 'John',
        method: 'browser',
        signedInAt: Date.UTC(2026, 11, 3, 12),
        lastRefreshAt: Date.UTC(2026, 11, 3, 12),
      },
    };
    expect(labels(trayMenu(trayView(signedIn), actions().recorded, true))).toContainEqual(
      expect.stringMatching(/^Signed in as john@contoso\.com since .*2026/),
    );
    expect(labels(trayMenu(trayView({ ...plain, signedIn: null }), actions().recorded, true))).toContain(
      'Nobody is signed in with Microsoft: open RelayDesk to sign in',
    );
  });

  it('leaves an open menu alone while the status it shows is unchanged (Linux closes a replaced menu)', () => {
    const tray = createTray('/icons', actions().recorded, status(healthInput()));
    const native = stub.Tray.created.at(-1)!;
    const menu = native.menu;
    for (let tick = 0; tick < 3; tick += 1) tray.update(status(healthInput()));
    expect(native.menu).toBe(menu);
    tray.update(status(healthInput({ state: 'paused' })));
    expect(native.menu).not.toBe(menu);
    tray.destroy();
  });
});

describe('IPC registration in main', () => {
  let dir: string;
  let service: RelayService;
  const warnings: Record<string, unknown>[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relaydesk-ipc-'));
    service = createRelayService({
      dataDir: dir,
      configPath: join(dir, 'config.json'),
      secrets: createMemoryStore(),
      logger: createLogger({ dir: null, console: false }),
      env: {},
      control: false,
    });
    await service.start();
    // The stand-in records handlers loosely typed; registerIpc sees the shape it needs.
    registerIpc(
      stub.ipcMain as unknown as Pick<IpcMain, 'handle' | 'removeHandler'>,
      createHandlers({ service, reportRendererError: () => undefined }),
      {
        warn: (_message, fields) => warnings.push(fields),
      },
    );
  });

  afterAll(async () => {
    await service.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const own = { senderFrame: { url: APP_URL, parent: null } };
  const invoke = (channel: string, event: unknown, payload: unknown) =>
    (stub.ipcMain.handlers.get(channel) as (e: unknown, p: unknown) => Promise<unknown>)(event, payload);

  it('handles exactly the channels of the contract', () => {
    expect([...stub.ipcMain.handlers.keys()].sort()).toEqual([...CHANNELS].sort());
  });

  it('answers the RelayDesk window', async () => {
    expect(await invoke('relay:status', own, null)).toMatchObject({ state: 'unconfigured' });
  });

  it('refuses a foreign page, a page the window navigated to, and a sub-frame', async () => {
    await expect(
      invoke('relay:status', { senderFrame: { url: 'https://evil.example/', parent: null } }, null),
    ).rejects.toThrow(/refused/);
    await expect(
      invoke('queue:flush', { senderFrame: { url: 'file:///tmp/page.html', parent: null } }, null),
    ).rejects.toThrow(/refused/);
    await expect(invoke('relay:pause', { senderFrame: { url: APP_URL, parent: {} } }, null)).rejects.toThrow(
      /refused/,
    );
    await expect(invoke('relay:pause', { senderFrame: null }, null)).rejects.toThrow(/refused/);
    expect(service.status().state).toBe('unconfigured');
    expect(warnings.some((w) => w.url === 'https://evil.example/')).toBe(true);
  });

  it('rejects bad payloads with the field named, and never logs the payload', async () => {
    await expect(invoke('queue:retry', own, { id: 42 })).rejects.toBeInstanceOf(PayloadError);
    await expect(invoke('device:allow', own, { ip: '10.0.0.5; rm -rf /' })).rejects.toThrow(/ip must be/);
    await expect(
      invoke('secret:store', own, { kind: 'password', secret: 'hunter2', config: null }),
    ).rejects.toThrow(/config must be an object/);
    await expect(invoke('relay:status', own, { sneaky: true })).rejects.toThrow(/takes no payload/);
    await expect(invoke('mail:send-test', own, { to: 'not an address' })).rejects.toThrow(/mail address/);
    expect(JSON.stringify(warnings)).not.toContain('hunter2');
  });

  it('hashes a LAN device user’s password as lan-user add does, and refuses an empty one', async () => {
    const hash = (await invoke('lan-user:hash', own, { password: 'Sc4nner!2F' })) as string;
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(hash).not.toContain('Sc4nner');
    expect(await verifyLanPassword('Sc4nner!2F', hash)).toBe(true);
    expect(await verifyLanPassword('wrong', hash)).toBe(false);
    await expect(invoke('lan-user:hash', own, { password: '' })).rejects.toThrow(/must not be empty/);
    await expect(invoke('lan-user:hash', own, { password: 42 })).rejects.toBeInstanceOf(PayloadError);
  });

  it('trusts only the top frame of the app:// page', () => {
    expect(isTrustedSender({ url: APP_URL, parent: null })).toBe(true);
    expect(isTrustedSender({ url: 'app://elsewhere/index.html', parent: null })).toBe(false);
  });
});

describe('the window', () => {
  it('is sandboxed, isolated, without Node, and opens no windows and navigates nowhere', () => {
    let quitting = false;
    createMainWindow({
      preloadPath: '/app/out/preload/index.cjs',
      iconPath: '/app/build/icon.png',
      isQuitting: () => quitting,
    });
    const window = stub.BrowserWindow.created.at(-1)!;
    expect(window.options.webPreferences).toMatchObject({
      sandbox: true,
      contextIsolation: true,
      nodeIntegration: false,
      webviewTag: false,
      preload: '/app/out/preload/index.cjs',
    });
    expect(window.loadedUrl).toBe(APP_URL);
    expect(window.webContents.windowOpenHandler?.({ url: 'https://evil.example' })).toEqual({
      action: 'deny',
    });
    let prevented = false;
    window.webContents.handlers.get('will-navigate')?.(
      { preventDefault: () => (prevented = true) },
      'https://evil.example',
    );
    expect(prevented).toBe(true);

    let closePrevented = false;
    window.emit('close', { preventDefault: () => (closePrevented = true) });
    expect(closePrevented).toBe(true);
    expect(window.hidden).toBe(true);
    quitting = true;
    closePrevented = false;
    window.emit('close', { preventDefault: () => (closePrevented = true) });
    expect(closePrevented).toBe(false);
  });

  it('asks before a page with unsaved edits unloads at Quit, and lets it go only if the user says so', () => {
    createMainWindow({ preloadPath: '/p.cjs', iconPath: '/i.png', isQuitting: () => true });
    const window = stub.BrowserWindow.created.at(-1)!;
    const unload = (answer: number) => {
      stub.dialog.answer = answer;
      let allowed = false;
      window.webContents.handlers.get('will-prevent-unload')?.({ preventDefault: () => (allowed = true) });
      return allowed;
    };
    expect(unload(1)).toBe(false);
    expect(stub.dialog.questions.at(-1)).toEqual({
      message: 'Settings has changes that are not saved.',
      buttons: ['Leave without saving', 'Stay'],
    });
    expect(unload(0)).toBe(true);
  });

  it('serves only files of the built window on app://', () => {
    // In the platform's own separators: on Windows the file is \app\renderer\dist\index.html.
    expect(rendererFile('/app/renderer/dist', 'app://relaydesk/index.html')).toBe(
      join('/app/renderer/dist', 'index.html'),
    );
    expect(rendererFile('/app/renderer/dist', 'app://relaydesk/assets/index.js')).toBe(
      join('/app/renderer/dist', 'assets', 'index.js'),
    );
    expect(rendererFile('/app/renderer/dist', 'app://relaydesk/..%2f..%2fetc%2fpasswd')).toBeNull();
    expect(rendererFile('/app/renderer/dist', 'app://other/index.html')).toBeNull();
  });
});

describe('notifications', () => {
  it('reports the tray test email with the server reply or the diagnosis', () => {
    showNotice(
      testEmailNotice({
        ok: true,
        to: 'john@contoso.com',
        from: 'john@contoso.com',
        reply: '250 2.0.0 OK',
        diagnosis: null,
        at: 1,
      }),
      () => undefined,
    );
    showNotice(
      testEmailNotice({
        ok: false,
        to: 'john@contoso.com',
        from: 'john@contoso.com',
        reply: '535 5.7.3',
        diagnosis,
        at: 1,
      }),
      () => undefined,
    );
    expect(stub.Notification.shown.slice(-2)).toEqual([
      { title: 'Test email sent', body: 'To john@contoso.com. The server said: 250 2.0.0 OK' },
      { title: 'The test email was not sent', body: 'Sign-in refused: 535 5.7.3' },
    ]);
  });
});

describe('the preload', () => {
  it('exposes one intent function per channel, never ipcRenderer, and subscriptions that unsubscribe', async () => {
    await import('../../electron/preload/index.ts');
    const api = stub.contextBridge.exposed.get('relaydesk') as RelayDeskApi;
    expect(Object.keys(api)).not.toContain('invoke');
    expect(Object.values(api).every((value) => typeof value === 'function')).toBe(true);

    await api.retryMessage('1732900000000-abc');
    await api.storeSecret('password', 's3cret', { upstream: {} });
    await api.getStatus();
    expect(stub.ipcRenderer.invoked).toEqual([
      { channel: 'queue:retry', payload: { id: '1732900000000-abc' } },
      { channel: 'secret:store', payload: { kind: 'password', secret: 's3cret', config: { upstream: {} } } },
      { channel: 'relay:status', payload: null },
    ]);

    const seen: unknown[] = [];
    const stop = api.onStatus((value) => seen.push(value));
    stub.ipcRenderer.emit('push:status', { state: 'running' });
    stop();
    stub.ipcRenderer.emit('push:status', { state: 'paused' });
    expect(seen).toEqual([{ state: 'running' }]);

    // Every channel of the contract is reachable from the window, and nothing else is.
    const calls: Record<keyof RelayDeskApi, () => Promise<unknown> | (() => void)> = {
      getStatus: () => api.getStatus(),
      pause: () => api.pause(),
      resume: () => api.resume(),
      listQueue: () => api.listQueue(),
      retryMessage: () => api.retryMessage('x'),
      deleteMessage: () => api.deleteMessage('x'),
      retryMessages: () => api.retryMessages(['x']),
      deleteMessages: () => api.deleteMessages(['x']),
      flushQueue: () => api.flushQueue(),
      listActivity: () => api.listActivity(),
      getConfig: () => api.getConfig(),
      validateConfig: () => api.validateConfig({}),
      applyConfig: () => api.applyConfig({}),
      storeSecret: () => api.storeSecret('password', 'x', {}),
      testConnection: () => api.testConnection(null),
      sendTestEmail: () => api.sendTestEmail(null),
      sendTestAlert: () => api.sendTestAlert(),
      signIn: () => api.signIn('browser', {}),
      allowDevice: () => api.allowDevice('10.0.0.5'),
      suggestNetwork: () => api.suggestNetwork(),
      hashLanPassword: () => api.hashLanPassword('x'),
      reportError: () => api.reportError('x', null),
      onStatus: () => api.onStatus(() => undefined),
      onActivity: () => api.onActivity(() => undefined),
      onTestEmail: () => api.onTestEmail(() => undefined),
      onSignInPrompt: () => api.onSignInPrompt(() => undefined),
    };
    stub.ipcRenderer.invoked.length = 0;
    for (const call of Object.values(calls)) await call();
    expect(new Set(stub.ipcRenderer.invoked.map((i) => i.channel))).toEqual(new Set(CHANNELS));
  });
});
