/**
 * The window's only door to main: `window.relaydesk`, one named function per action of the IPC
 * contract, and subscriptions that return their unsubscribe function. ipcRenderer itself is never
 * exposed. Sandboxed preloads cannot load local modules: this file imports types only.
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type { Channel, PayloadOf, PushChannel, PushEvents, RelayDeskApi, ResultOf } from '../shared/ipc.ts';

function invoke<C extends Channel>(channel: C, payload: PayloadOf<C>): Promise<ResultOf<C>> {
  return ipcRenderer.invoke(channel, payload) as Promise<ResultOf<C>>;
}

function subscribe<C extends PushChannel>(channel: C, listener: (value: PushEvents[C]) => void): () => void {
  const forward = (_event: IpcRendererEvent, value: PushEvents[C]) => listener(value);
  ipcRenderer.on(channel, forward);
  return () => {
    ipcRenderer.removeListener(channel, forward);
  };
}

export const relaydesk: RelayDeskApi = {
  getStatus: () => invoke('relay:status', null),
  pause: () => invoke('relay:pause', null),
  resume: () => invoke('relay:resume', null),
  listQueue: () => invoke('queue:list', null),
  retryMessage: (id) => invoke('queue:retry', { id }),
  deleteMessage: (id) => invoke('queue:delete', { id }),
  flushQueue: () => invoke('queue:flush', null),
  listActivity: () => invoke('activity:list', null),
  getConfig: () => invoke('config:get', null),
  validateConfig: (config) => invoke('config:validate', { config }),
  applyConfig: (config) => invoke('config:apply', { config }),
  storeSecret: (kind, secret, config) => invoke('secret:store', { kind, secret, config }),
  testConnection: (config) => invoke('upstream:check', { config }),
  sendTestEmail: (to) => invoke('mail:send-test', { to }),
  signIn: (method, config) => invoke('signin:start', { method, config }),
  allowDevice: (ip) => invoke('device:allow', { ip }),
  suggestNetwork: () => invoke('network:suggest', null),
  hashLanPassword: (password) => invoke('lan-user:hash', { password }),
  reportError: (message, stack) => invoke('log:renderer-error', { message, stack }),
  onStatus: (listener) => subscribe('push:status', listener),
  onActivity: (listener) => subscribe('push:activity', listener),
  onTestEmail: (listener) => subscribe('push:test-email', listener),
  onSignInPrompt: (listener) => subscribe('push:signin', listener),
};

contextBridge.exposeInMainWorld('relaydesk', relaydesk);
