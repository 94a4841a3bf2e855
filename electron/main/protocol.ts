/**
 * app://relaydesk/ serves the built window from disk with the same security headers as the admin web
 * server. A real scheme (rather than file://) gives the page a stable identity to check IPC senders
 * against, and lets main set the CSP as a header.
 */
import { readFile } from 'node:fs/promises';
import { protocol } from 'electron';
import { CONTENT_SECURITY_POLICY } from '../app/csp.ts';
import { rendererContentType, rendererFilePath } from '../app/renderer-files.ts';
import { APP_HOST, APP_SCHEME } from './window.ts';

/** Must run before the app is ready. */
export function registerAppScheme(): void {
  protocol.registerSchemesAsPrivileged([
    { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: false } },
  ]);
}

/** The file under `rendererDir` that `url` names, or null for anything outside it or another host. */
export function rendererFile(rendererDir: string, url: string): string | null {
  const parsed = new URL(url);
  if (parsed.host !== APP_HOST) return null;
  return rendererFilePath(rendererDir, parsed.pathname);
}

export function serveRenderer(rendererDir: string): void {
  protocol.handle(APP_SCHEME, async (request) => {
    const file = rendererFile(rendererDir, request.url);
    const headers = {
      'Content-Security-Policy': CONTENT_SECURITY_POLICY,
      'X-Content-Type-Options': 'nosniff',
    };
    if (!file) return new Response('Not found', { status: 404, headers });
    try {
      const body = await readFile(file);
      return new Response(body, {
        headers: { ...headers, 'Content-Type': rendererContentType(file) },
      });
    } catch {
      return new Response('Not found', { status: 404, headers });
    }
  });
}
