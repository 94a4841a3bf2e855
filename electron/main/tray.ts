/**
 * The tray icon: its picture and tooltip from the relay's health, and its menu (Open, Send test
 * email, Pause/Resume, Start at login, Quit). `trayView` and `trayMenu` are plain functions of the
 * status, so what the tray shows is tested without a desktop. When the relay runs as a service the
 * tray shows that service instead (`serviceTrayMenu`, app/service-remote.ts).
 */
import { join } from 'node:path';
import { Menu, nativeImage, Tray, type MenuItemConstructorOptions } from 'electron';
import type { AppStatus, Health } from '../shared/ipc.ts';

export interface TrayView {
  icon: Health;
  tooltip: string;
  paused: boolean;
  /** Delegated sign-in only: who is signed in, and since when (or that nobody is); else null. */
  signedIn: string | null;
}

export interface TrayActions {
  open(): void;
  sendTestEmail(): void;
  togglePause(): void;
  /** Null where there is no way to start at login (the menu then leaves the item out). */
  startAtLogin(): boolean | null;
  setStartAtLogin(enabled: boolean): void;
  /** Says how to run the relay as a service; absent where the app cannot offer it. */
  offerService?: () => void;
  quit(): void;
}

/** The tray of a relay that runs as a service: it shows it and drives it, it does not run one. */
export interface ServiceTrayActions {
  retryNow(): void;
  /** Ends the tray only: the service keeps relaying. */
  quit(): void;
}

export function trayView(status: AppStatus): TrayView {
  return {
    icon: status.health,
    tooltip: status.summary,
    paused: status.state === 'paused',
    signedIn: signedInLine(status),
  };
}

/** The sign-in a delegated setup depends on, in the menu so that nobody is surprised when it ends. */
function signedInLine(status: AppStatus): string | null {
  if (status.signedIn === undefined) return null;
  if (status.signedIn === null) return 'Nobody is signed in with Microsoft: open RelayDesk to sign in';
  const since = new Date(status.signedIn.signedInAt).toLocaleDateString(undefined, { dateStyle: 'medium' });
  return `Signed in as ${status.signedIn.username} since ${since}`;
}

/**
 * The icon file as each OS wants it (build/make-icons.mjs draws them): an .ico with every size on
 * Windows (no blur at 125 % or 150 %), a template image on macOS (the menu bar tints it), PNGs on
 * Linux, where Electron picks the `@<scale>x` sibling for the display.
 */
export function trayIconFile(
  iconDir: string,
  health: Health,
  platform: NodeJS.Platform = process.platform,
): string {
  if (platform === 'win32') return join(iconDir, `tray-${health}.ico`);
  if (platform === 'darwin') return join(iconDir, `tray-${health}Template.png`);
  return join(iconDir, `tray-${health}.png`);
}

export function trayMenu(
  view: TrayView,
  actions: TrayActions,
  configured: boolean,
): MenuItemConstructorOptions[] {
  const loginItem = actions.startAtLogin();
  const items: MenuItemConstructorOptions[] = [
    { label: view.tooltip, enabled: false },
    ...(view.signedIn ? [{ label: view.signedIn, enabled: false }] : []),
    { type: 'separator' },
    { label: 'Open RelayDesk', click: () => actions.open() },
    { label: 'Send test email', enabled: configured && !view.paused, click: () => actions.sendTestEmail() },
    { label: view.paused ? 'Resume' : 'Pause', enabled: configured, click: () => actions.togglePause() },
  ];
  if (loginItem !== null) {
    items.push({
      label: 'Start at login',
      type: 'checkbox',
      checked: loginItem,
      click: (item) => actions.setStartAtLogin(item.checked),
    });
  }
  if (actions.offerService) {
    const offer = actions.offerService;
    items.push({ label: 'Run the relay as a service (works before anyone signs in)…', click: () => offer() });
  }
  items.push({ type: 'separator' }, { label: 'Quit RelayDesk', click: () => actions.quit() });
  return items;
}

export function serviceTrayMenu(view: TrayView, actions: ServiceTrayActions): MenuItemConstructorOptions[] {
  return [
    { label: view.tooltip, enabled: false },
    ...(view.signedIn ? [{ label: view.signedIn, enabled: false }] : []),
    { label: 'Runs as a service: works before anyone signs in', enabled: false },
    { type: 'separator' },
    { label: 'Retry queued mail now', enabled: view.icon !== 'error', click: () => actions.retryNow() },
    { type: 'separator' },
    { label: 'Quit (the service keeps relaying)', click: () => actions.quit() },
  ];
}

export interface TrayController {
  update(status: AppStatus): void;
  destroy(): void;
}

export function createTray(iconDir: string, actions: TrayActions, initial: AppStatus): TrayController {
  return trayWith(
    iconDir,
    initial,
    (view, configured) => trayMenu(view, actions, configured),
    () => actions.open(),
    () => actions.startAtLogin(),
  );
}

export function createServiceTray(
  iconDir: string,
  actions: ServiceTrayActions,
  initial: AppStatus,
): TrayController {
  return trayWith(
    iconDir,
    initial,
    (view) => serviceTrayMenu(view, actions),
    null,
    () => null,
  );
}

function trayWith(
  iconDir: string,
  initial: AppStatus,
  menuOf: (view: TrayView, configured: boolean) => MenuItemConstructorOptions[],
  onClick: (() => void) | null,
  startAtLogin: () => boolean | null,
): TrayController {
  const tray = new Tray(nativeImage.createFromPath(trayIconFile(iconDir, initial.health)));
  if (onClick) tray.on('click', onClick);
  let shown: Health | null = initial.health;
  let menuShown = '';

  function update(status: AppStatus): void {
    const view = trayView(status);
    if (view.icon !== shown) {
      tray.setImage(nativeImage.createFromPath(trayIconFile(iconDir, view.icon)));
      shown = view.icon;
    }
    const configured = status.state !== 'unconfigured';
    // Status arrives every few seconds; a new menu while one is open closes it on Linux, so the
    // menu is rebuilt only when something it shows has changed.
    const menuKey = JSON.stringify([view, configured, startAtLogin()]);
    if (menuKey === menuShown) return;
    menuShown = menuKey;
    tray.setToolTip(view.tooltip);
    tray.setContextMenu(Menu.buildFromTemplate(menuOf(view, configured)));
  }

  update(initial);
  return { update, destroy: () => tray.destroy() };
}
