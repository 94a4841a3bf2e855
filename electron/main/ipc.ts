/**
 * main's side of the IPC contract: one `ipcMain.handle` per declared channel. Each request is answered
 * only for the app's own page (sender frame checked) and only with a payload that passes the
 * contract's validator; anything else is refused and logged without the payload.
 */
import type { IpcMain, IpcMainInvokeEvent } from 'electron';
import { handle, type Handlers } from '../app/handlers.ts';
import { CHANNELS, PayloadError } from '../shared/ipc.ts';
import { isTrustedSender } from './window.ts';

export interface IpcLog {
  warn(message: string, fields: Record<string, unknown>): void;
}

export function registerIpc(
  ipcMain: Pick<IpcMain, 'handle' | 'removeHandler'>,
  handlers: Handlers,
  log: IpcLog,
): () => void {
  for (const channel of CHANNELS) {
    ipcMain.handle(channel, async (event: IpcMainInvokeEvent, payload: unknown) => {
      if (!isTrustedSender(event.senderFrame)) {
        log.warn('ipc-refused', {
          channel,
          reason: 'sender is not the RelayDesk window',
          url: event.senderFrame?.url,
        });
        throw new Error(`${channel}: refused, the request did not come from the RelayDesk window`);
      }
      try {
        return await handle(handlers, channel, payload);
      } catch (error) {
        if (error instanceof PayloadError) log.warn('ipc-refused', { channel, reason: error.message });
        throw error;
      }
    });
  }
  return () => {
    for (const channel of CHANNELS) ipcMain.removeHandler(channel);
  };
}
