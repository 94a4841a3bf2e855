/**
 * The one window: sandboxed, context-isolated, no Node, served from the app:// scheme with a strict
 * CSP, no window.open, no navigation. Closing it hides it: the relay keeps running in the tray.
 */
import { BrowserWindow, dialog, type WebFrameMain, type WebPreferences } from 'electron';

export const APP_SCHEME = 'app';
export const APP_HOST = 'relaydesk';
export const APP_URL = `${APP_SCHEME}://${APP_HOST}/index.html`;

export function webPreferences(preloadPath: string): WebPreferences {
  return {
    preload: preloadPath,
    sandbox: true,
    contextIsolation: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webviewTag: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    navigateOnDragDrop: false,
    spellcheck: false,
  };
}

/** Is `url` a page of the app itself (app://relaydesk/...)? Custom schemes have an opaque origin, so compare parts. */
export function isAppUrl(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.protocol === `${APP_SCHEME}:` && parsed.host === APP_HOST;
  } catch {
    return false;
  }
}

/** IPC is answered only for the app's own top-level page, not for a frame or a page it navigated to. */
export function isTrustedSender(frame: Pick<WebFrameMain, 'url' | 'parent'> | null | undefined): boolean {
  return frame !== null && frame !== undefined && frame.parent === null && isAppUrl(frame.url);
}

export interface WindowOptions {
  preloadPath: string;
  iconPath: string;
  /** True once the user chose Quit: then closing really closes. */
  isQuitting: () => boolean;
}

export function createMainWindow(options: WindowOptions): BrowserWindow {
  const window = new BrowserWindow({
    width: 1100,
    height: 780,
    minWidth: 560,
    minHeight: 420,
    show: false,
    title: 'RelayDesk',
    icon: options.iconPath,
    autoHideMenuBar: true,
    webPreferences: webPreferences(options.preloadPath),
  });
  const contents = window.webContents;
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  contents.on('will-navigate', (event) => event.preventDefault());
  contents.on('will-redirect', (event) => event.preventDefault());
  contents.on('will-attach-webview', (event) => event.preventDefault());
  window.on('close', (event) => {
    if (options.isQuitting()) return;
    event.preventDefault();
    window.hide();
  });
  // Settings with unsaved edits asks before the page unloads (beforeunload). A browser asks the user
  // then; Electron asks nobody and keeps the page, so Quit would silently do nothing: ask here.
  contents.on('will-prevent-unload', (event) => {
    const choice = dialog.showMessageBoxSync(window, {
      type: 'question',
      title: 'RelayDesk',
      message: 'Settings has changes that are not saved.',
      detail: 'Leave anyway and lose them, or stay to save them?',
      buttons: ['Leave without saving', 'Stay'],
      defaultId: 1,
      cancelId: 1,
    });
    if (choice === 0) event.preventDefault();
  });
  void window.loadURL(APP_URL);
  return window;
}
