/**
 * The loopback redirect of a browser sign-in (RFC 8252 §7.3): a one-shot HTTP listener on this
 * computer, `http://localhost:<port>/`, open only while the sign-in runs. Entra ID sends the browser
 * there with `code` and `state` (or `error`); anything else (favicon) gets 404 and the wait goes on.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UpstreamError } from '../upstream-failure.ts';

export interface LoopbackRedirect {
  /** `http://localhost:<port>/`, to send as redirect_uri. */
  redirectUri: string;
  /** The query of the redirect whose `state` matches; rejects on a foreign state or after `timeoutMs`. */
  wait(state: string, timeoutMs: number): Promise<URLSearchParams>;
  close(): Promise<void>;
}

const PAGE_STYLE = 'font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;line-height:1.5';

function page(title: string, text: string): string {
  const escape = (value: string) =>
    value.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>RelayDesk: ${escape(title)}</title></head>` +
    `<body style="${PAGE_STYLE}"><h1>${escape(title)}</h1><p>${escape(text)}</p></body></html>`
  );
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export async function startLoopbackRedirect(): Promise<LoopbackRedirect> {
  let expectedState: string | null = null;
  let settle: ((outcome: { query?: URLSearchParams; error?: Error }) => void) | null = null;

  const handler = (
    request: import('node:http').IncomingMessage,
    response: import('node:http').ServerResponse,
  ) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const query = url.searchParams;
    if (request.method !== 'GET' || url.pathname !== '/' || (!query.has('code') && !query.has('error'))) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found');
      return;
    }
    response.setHeader('content-type', 'text/html; charset=utf-8');
    response.setHeader('cache-control', 'no-store');
    if (expectedState === null || query.get('state') !== expectedState) {
      // A redirect RelayDesk did not ask for (another tab, an old link, a forged request): never redeemed.
      response
        .writeHead(400)
        .end(
          page(
            'Sign-in not accepted',
            'This answer does not belong to the sign-in RelayDesk started. Start it again.',
          ),
        );
      settle?.({
        error: new UpstreamError({
          kind: 'config',
          code: 'SIGNIN_STATE_MISMATCH',
          message:
            'The browser came back with a sign-in answer that does not belong to this sign-in (its state ' +
            'does not match), so RelayDesk did not use it. Run `relaydesk signin` again.',
        }),
      });
      return;
    }
    const failed = query.has('error');
    response
      .writeHead(200)
      .end(
        failed
          ? page(
              'Sign-in failed',
              `Microsoft answered: ${query.get('error_description') ?? query.get('error')}. RelayDesk shows what to do.`,
            )
          : page('Signed in to RelayDesk', 'You can close this tab and return to RelayDesk.'),
      );
    settle?.({ query });
  };

  // Browsers resolve localhost to 127.0.0.1 or ::1: listen on both, on the same port.
  const v4 = createServer(handler);
  await listen(v4, 0, '127.0.0.1');
  const { port } = v4.address() as AddressInfo;
  const servers = [v4];
  const v6 = createServer(handler);
  try {
    await listen(v6, port, '::1');
    servers.push(v6);
  } catch {
    // No IPv6 loopback here, or the port is taken there: 127.0.0.1 alone serves.
  }

  return {
    redirectUri: `http://localhost:${port}/`,
    wait(state, timeoutMs) {
      expectedState = state;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          settle = null;
          reject(
            new UpstreamError({
              kind: 'config',
              code: 'SIGNIN_TIMEOUT',
              message: `Nobody finished signing in within ${Math.round(timeoutMs / 1000)} seconds. Run \`relaydesk signin\` again.`,
            }),
          );
        }, timeoutMs);
        settle = (outcome) => {
          settle = null;
          clearTimeout(timer);
          if (outcome.error) reject(outcome.error);
          else resolve(outcome.query!);
        };
      });
    },
    async close() {
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
    },
  };
}
