/**
 * The window's only door to main: `window.relaydesk`, one named function per request of the IPC
 * contract, and subscriptions that return their unsubscribe function, all built from the contract
 * (electron/shared/ipc.ts). ipcRenderer itself is never exposed. A sandboxed preload cannot load local
 * modules: the build bundles the contract into this file, so it must stay free of Node modules.
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import { createApi, type PushChannel, type PushEvents } from '../shared/ipc.ts';

function subscribe<C extends PushChannel>(channel: C, listener: (value: PushEvents[C]) => void): () => void {
  const forward = (_event: IpcRendererEvent, value: PushEvents[C]) => listener(value);
  ipcRenderer.on(channel, forward);
  return () => {
    ipcRenderer.removeListener(channel, forward);
  };
}

export const relaydesk = createApi((channel, payload) => ipcRenderer.invoke(channel, payload), subscribe);

contextBridge.exposeInMainWorld('relaydesk', relaydesk);
