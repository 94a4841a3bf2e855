import type { RelayDeskApi } from '../../electron/shared/ipc.ts';

declare global {
  interface Window {
    /** Exposed by Electron's preload; absent in a browser (admin mode). */
    relaydesk?: RelayDeskApi;
  }
}

export {};
