import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAdminAddress } from '../../electron/admin/command.ts';
import { startAdminServer, type AdminServer } from '../../electron/admin/server.ts';
import { CONTENT_SECURITY_POLICY } from '../../electron/app/csp.ts';
import { readOrCreateToken } from '../../electron/admin/token.ts';
import { createHandlers } from '../../electron/app/handlers.ts';
import { createRelayService, type RelayService } from '../../electron/app/service.ts';
import { createLogger } from '../../electron/relay/log.ts';
import { createMemoryStore } from '../../electron/secrets/index.ts';
import { startRawSmtpServer } from '../fixtures/raw-smtp-server.ts';
import { freePort } from '../fixtures/free-port.ts';
import { startTokenEndpoint, type TokenEndpoint } from '../fixtures/token-endpoint.ts';

let dir: string;
let service: RelayService;
let admin: AdminServer;
let token: string;
const rendererErrors: string[] = [];

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
}

/**
 * A config whose upstream signs in with OAuth 2.0 as an app of `entra`, asking `tokenUrl` for its
 * token, and sends nowhere (port 1): for what the relay tells a token endpoint, real or not.
 */
function oauthToNowhere(entra: Pick<TokenEndpoint, 'tenant' | 'clientId'>, tokenUrl: string) {
  return {
    upstream: {
      host: '127.0.0.1',
      port: 1,
      security: 'none',
      auth: 'oauth2',
      user: 'scanner@contoso.com',
      oauth2: { tenant: entra.tenant, clientId: entra.clientId, tokenUrl },
    },
  };
}

function request(
  method: string,
  path: string,
  options: { host?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {},
): Promise<Answer> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: admin.port,
        localAddress: options.localAddress,
        method,
        path,
        headers: { Host: options.host ?? `127.0.0.1:${admin.port}`, ...options.headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: Date.now() - started }),
        );
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function call(channel: string, payload: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return request('POST', `/api/rpc/${channel}`, {
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(payload),
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relaydesk-admin-'));
  const rendererDir = join(dir, 'renderer');
  await mkdir(join(rendererDir, 'assets'), { recursive: true });
  await writeFile(join(rendererDir, 'index.html'), '<!doctype html><title>RelayDesk</title>');
  await writeFile(join(rendererDir, 'assets', 'app.js'), 'console.log(1)');
  await writeFile(join(dir, 'secret.txt'), 'not for the web');
  const logger = createLogger({ dir: null, console: false });
  service = createRelayService({
    dataDir: join(dir, 'data'),
    configPath: join(dir, 'data', 'config.json'),
    secrets: createMemoryStore(),
    logger,
    env: {},
    control: false,
  });
  await service.start();
  token = await readOrCreateToken(dir);
  admin = await startAdminServer({
    host: '127.0.0.1',
    port: 0,
    token,
    rendererDir,
    handlers: createHandlers({ service, reportRendererError: (message) => rendererErrors.push(message) }),
    events: service.events,
    logger,
    failureDelayMs: 100,
  });
});

afterAll(async () => {
  await admin?.close();
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('the admin web server (serve --admin)', () => {
  it('keeps its token in the data folder, readable by the owner only, across restarts', async () => {
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await stat(join(dir, 'admin-token'))).mode & 0o777).toBe(0o600);
    expect(await readOrCreateToken(dir)).toBe(token);
    expect((await readFile(join(dir, 'admin-token'), 'utf8')).trim()).toBe(token);
  });

  it('serves the window with a strict CSP and no framing', async () => {
    const page = await request('GET', '/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('RelayDesk');
    expect(page.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'");
    expect(CONTENT_SECURITY_POLICY).not.toContain('unsafe');
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect((await request('GET', '/assets/app.js')).headers['content-type']).toMatch(/^text\/javascript/);
  });

  it('refuses a Host header that does not name its address (DNS rebinding): 421', async () => {
    const rebound = await request('GET', '/', { host: `attacker.example:${admin.port}` });
    expect(rebound.status).toBe(421);
    const api = await call('relay:status', null, { Host: `attacker.example:${admin.port}` });
    expect(api.status).toBe(421);
    expect((await request('GET', '/', { host: `localhost:${admin.port}` })).status).toBe(200);
  });

  it('refuses API requests without the token, and a cookie is no substitute: 401', async () => {
    const none = await request('POST', '/api/rpc/relay:status', {
      headers: { 'Content-Type': 'application/json', Cookie: `token=${token}` },
      body: 'null',
    });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toContain('Bearer');
    expect(none.body).not.toContain('state');
    expect((await request('GET', '/api/events')).status).toBe(401);
  });

  it('answers wrong tokens slower each time, and the right one at once', async () => {
    const wrong = (n: number) =>
      request('POST', '/api/rpc/queue:flush', {
        headers: { 'Content-Type': 'application/json', 'X-RelayDesk-Token': `guess-${n}` },
        body: 'null',
      });
    const first = await wrong(1);
    await wrong(2);
    const third = await wrong(3);
    expect(first.status).toBe(401);
    expect(third.status).toBe(401);
    expect(first.ms).toBeGreaterThanOrEqual(90);
    expect(third.ms).toBeGreaterThanOrEqual(390);
    const right = await call('relay:status', null);
    expect(right.status).toBe(200);
    // Not held by the penalty its client earned (the next wrong one would wait about 800 ms): measured
    // against the third wrong answer, not a fixed time, on a machine that may be busy.
    expect(right.ms).toBeLessThan(third.ms);
    expect(JSON.parse(right.body).result).toMatchObject({ state: 'unconfigured', health: 'attention' });
  });

  it('answers parallel wrong tokens from many addresses one delay apart, and the right one at once', async () => {
    // 30 guessers on 30 loopback addresses, each with its first (cheapest) attempt, all at once.
    const guessers = Array.from({ length: 30 }, (_, index) =>
      request('POST', '/api/rpc/queue:flush', {
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer guess-${index}` },
        body: 'null',
        localAddress: `127.0.1.${index + 1}`,
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const right = await call('relay:status', null);
    const answers = await Promise.all(guessers);
    const slowest = Math.max(...answers.map((answer) => answer.ms));
    expect(answers.map((answer) => answer.status)).toEqual(answers.map(() => 401));
    // failureDelayMs is 100: thirty wrong answers need thirty delays, not one.
    expect(slowest).toBeGreaterThanOrEqual(30 * 100 - 10);
    // The admin with the token is not queued behind the guessers.
    expect(right.status).toBe(200);
    expect(right.ms).toBeLessThan(slowest / 4);
  });

  it('never sends a stored secret to a host a draft config names: it must be typed again', async () => {
    // The real token endpoint (127.0.0.1) and an attacker's stand-ins on 127.0.0.2 that record everything.
    const entra = await startTokenEndpoint();
    const stolen: string[] = [];
    const fakeEntra = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        stolen.push(body);
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}');
      });
    });
    await new Promise<void>((resolve) => fakeEntra.listen(0, '127.0.0.2', resolve));
    const fakeSmtp = await startRawSmtpServer({ host: '127.0.0.2' });
    const fakeEntraUrl = `http://127.0.0.2:${(fakeEntra.address() as { port: number }).port}/${entra.tenant}/oauth2/v2.0/token`;
    const oauth = (tokenUrl: string) => oauthToNowhere(entra, tokenUrl);
    const password = (host: string, port: number) => ({
      upstream: { host, port, security: 'none', auth: 'password', user: 'scanner@contoso.com' },
    });
    try {
      const stored = await call('secret:store', {
        kind: 'client-secret',
        secret: entra.clientSecret,
        config: oauth(entra.url()),
      });
      expect(JSON.parse(stored.body).result).toMatchObject({ ok: true });
      expect(
        (
          await call('secret:store', {
            kind: 'password',
            secret: 'pw-for-real-host',
            config: password('127.0.0.1', 1),
          })
        ).status,
      ).toBe(200);

      // Where it was stored for, the secret is used: a token is issued.
      const genuine = JSON.parse((await call('upstream:check', { config: oauth(entra.url()) })).body).result;
      expect(genuine.steps[0]).toMatchObject({ name: 'credentials', ok: true });

      const viaFakeEntra = JSON.parse(
        (await call('upstream:check', { config: oauth(fakeEntraUrl) })).body,
      ).result;
      const viaFakeSmtp = JSON.parse(
        (await call('upstream:check', { config: password('127.0.0.2', fakeSmtp.port) })).body,
      ).result;
      expect(viaFakeEntra).toMatchObject({ ok: false, steps: [{ name: 'credentials', ok: false }] });
      expect(viaFakeEntra.reason).toContain('was stored for http://127.0.0.1');
      expect(viaFakeEntra.reason).toContain('type the secret again');
      expect(viaFakeSmtp.ok).toBe(false);
      expect(stolen).toEqual([]);
      expect(
        fakeSmtp.sessions.flatMap((session) => session.commands).filter((c) => /^AUTH/i.test(c)),
      ).toEqual([]);

      // Typed again for the new endpoint, it goes there (and the window no longer shows it as stored for the old).
      await call('secret:store', {
        kind: 'client-secret',
        secret: 'typed-again',
        config: oauth(fakeEntraUrl),
      });
      await call('upstream:check', { config: oauth(fakeEntraUrl) });
      expect(stolen.join('')).toContain('client_secret=typed-again');
      const genuineAgain = JSON.parse(
        (await call('upstream:check', { config: oauth(entra.url()) })).body,
      ).result;
      expect(genuineAgain.reason).toContain('was stored for http://127.0.0.2');
    } finally {
      await fakeSmtp.close();
      await new Promise((resolve) => fakeEntra.close(resolve));
      await entra.close();
    }
  });

  it('refuses a cross-site form post (not JSON: 415) and a foreign Origin (403), even with the token', async () => {
    const form = await call('queue:flush', null, { 'Content-Type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    const foreign = await call('queue:flush', null, { Origin: 'http://attacker.example' });
    expect(foreign.status).toBe(403);
    const own = await call('queue:flush', null, { Origin: `http://127.0.0.1:${admin.port}` });
    expect(own.status).toBe(200);
  });

  it('validates every payload and names the bad field, never echoing the value', async () => {
    const badId = await call('queue:retry', { id: '../../etc/passwd' });
    expect(badId.status).toBe(400);
    expect(JSON.parse(badId.body).error).toContain('id must be a queue id');
    expect(badId.body).not.toContain('passwd');
    const extra = await call('device:allow', { ip: '10.0.0.5', admin: true });
    expect(extra.status).toBe(400);
    const notIp = await call('device:allow', { ip: 'evil.example' });
    expect(notIp.status).toBe(400);
    const secret = await call('secret:store', { kind: 'password', secret: 'hunter2', config: 'x' });
    expect(secret.status).toBe(400);
    expect(secret.body).not.toContain('hunter2');
    expect((await call('no:such-channel', null)).status).toBe(404);
    expect(
      (await request('GET', '/api/rpc/relay:status', { headers: { Authorization: `Bearer ${token}` } }))
        .status,
    ).toBe(405);
  });

  it('serves only files of the window, nothing outside its folder', async () => {
    expect((await request('GET', '/..%2fsecret.txt')).status).toBe(404);
    expect((await request('GET', '/assets/..%2f..%2fsecret.txt')).status).toBe(404);
  });

  it('runs the same API as the preload: errors from the window are forwarded', async () => {
    const answer = await call('log:renderer-error', { message: 'TypeError: x is undefined', stack: null });
    expect(answer.status).toBe(200);
    expect(rendererErrors).toContain('TypeError: x is undefined');
  });

  it('pushes status changes over Server-Sent Events to a token holder', async () => {
    const frames = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: admin.port,
          path: '/api/events',
          headers: { Host: `127.0.0.1:${admin.port}`, Authorization: `Bearer ${token}` },
        },
        (res) => {
          expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
            if (text.includes('event: push:status')) {
              req.destroy();
              resolve(text);
            }
          });
          void service.pause();
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(frames).toMatch(/event: push:status\ndata: \{.*"state"/);
  });

  it('parses --admin addresses', () => {
    expect(parseAdminAddress('127.0.0.1:8025')).toEqual({ host: '127.0.0.1', port: 8025 });
    expect(parseAdminAddress('[::1]:8025')).toEqual({ host: '::1', port: 8025 });
    expect(parseAdminAddress('8025')).toEqual({ host: '127.0.0.1', port: 8025 });
    expect(parseAdminAddress('evil.example:8025')).toBeNull();
    expect(parseAdminAddress('127.0.0.1:99999')).toBeNull();
  });
});

describe('a secret given in the environment (a server without a keychain)', () => {
  it('goes only to the upstream RelayDesk started with, never to one a draft or new config names', async () => {
    const entra = await startTokenEndpoint();
    const stolen: string[] = [];
    const fakeEntra = http.createServer((req, res) => {
      req.on('data', (chunk: Buffer) => stolen.push(chunk.toString('utf8')));
      req.on('end', () => res.writeHead(400).end());
    });
    await new Promise<void>((resolve) => fakeEntra.listen(0, '127.0.0.2', resolve));
    const fakeUrl = `http://127.0.0.2:${(fakeEntra.address() as { port: number }).port}/${entra.tenant}/oauth2/v2.0/token`;
    const root = await mkdtemp(join(tmpdir(), 'relaydesk-env-secret-'));
    const config = (tokenUrl: string) => oauthToNowhere(entra, tokenUrl);
    await mkdir(join(root, 'data'));
    const started = { ...config(entra.url()), listen: { host: '127.0.0.1', port: await freePort() } };
    await writeFile(join(root, 'data', 'config.json'), JSON.stringify(started));
    const envService = createRelayService({
      dataDir: join(root, 'data'),
      configPath: join(root, 'data', 'config.json'),
      secrets: createMemoryStore(),
      logger: createLogger({ dir: null, console: false }),
      env: { RELAYDESK_CLIENT_SECRET: entra.clientSecret },
      control: false,
    });
    try {
      await envService.start();
      const genuine = await envService.testConnection(null);
      expect(genuine.steps[0]).toMatchObject({ name: 'credentials', ok: true });

      const draft = await envService.testConnection({ ...started, upstream: config(fakeUrl).upstream });
      expect(draft.ok).toBe(false);
      expect(draft.reason).toContain('RELAYDESK_CLIENT_SECRET holds the secret for http://127.0.0.1');
      const applied = await envService.applyConfig({ ...started, upstream: config(fakeUrl).upstream });
      expect(applied).toMatchObject({ ok: false, problems: [{ path: 'upstream.oauth2.tokenUrl' }] });
      expect(stolen).toEqual([]);
    } finally {
      await envService.stop();
      await new Promise((resolve) => fakeEntra.close(resolve));
      await entra.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
