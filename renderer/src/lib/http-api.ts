/**
 * The window's API in a browser (`relaydesk serve --admin`): the same interface as Electron's preload,
 * over POST /api/rpc/<channel> and a Server-Sent Events stream read with fetch, because EventSource
 * cannot send the token header (and a token in a URL would end up in logs and history).
 */
import {
  createApi,
  EVENTS_PATH,
  PUSH_CHANNELS,
  RPC_PATH,
  type Channel,
  type PayloadOf,
  type PushChannel,
  type PushEvents,
  type RelayDeskApi,
  type ResultOf,
} from '../../../electron/shared/ipc.ts';

export class UnauthorizedError extends Error {
  constructor() {
    super('The access token was refused');
    this.name = 'UnauthorizedError';
  }
}

type Listener<C extends PushChannel> = (value: PushEvents[C]) => void;

const RECONNECT_MS = 2000;

export function createHttpApi(token: string, onUnauthorized: () => void): RelayDeskApi {
  const headers = { Authorization: `Bearer ${token}` };
  const listeners = Object.fromEntries(PUSH_CHANNELS.map((channel) => [channel, new Set()])) as {
    [C in PushChannel]: Set<Listener<C>>;
  };
  let streaming = false;

  async function call<C extends Channel>(channel: C, payload: PayloadOf<C>): Promise<ResultOf<C>> {
    const response = await fetch(`${RPC_PATH}${channel}`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify(payload),
    });
    if (response.status === 401) {
      onUnauthorized();
      throw new UnauthorizedError();
    }
    const body = (await response.json()) as { result?: ResultOf<C>; error?: string };
    if (!response.ok) throw new Error(body.error ?? `HTTP ${response.status}`);
    return body.result as ResultOf<C>;
  }

  function dispatch(frame: string): void {
    let event = '';
    let data = '';
    for (const line of frame.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (!data || !(event in listeners)) return;
    const channel = event as PushChannel;
    const value: unknown = JSON.parse(data);
    for (const listener of listeners[channel]) (listener as (v: unknown) => void)(value);
  }

  async function stream(): Promise<void> {
    for (;;) {
      try {
        const response = await fetch(EVENTS_PATH, { headers });
        if (response.status === 401) {
          onUnauthorized();
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buffer += value;
          let end = buffer.indexOf('\n\n');
          while (end >= 0) {
            dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf('\n\n');
          }
        }
      } catch {
        // The relay restarted or the network blinked: reconnect below.
      }
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }

  function subscribe<C extends PushChannel>(channel: C, listener: Listener<C>): () => void {
    listeners[channel].add(listener);
    if (!streaming) {
      streaming = true;
      void stream();
    }
    return () => listeners[channel].delete(listener);
  }

  return createApi(call, subscribe);
}
