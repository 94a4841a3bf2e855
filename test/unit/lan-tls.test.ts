import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { LanTlsError, loadLanTls, type LanTls } from '../../electron/relay/lan-tls.ts';
import { serverCertificate, testCa, untrustedCertificate } from '../fixtures/tls.ts';

const NO_FILES = { certFile: null, keyFile: null, allowLegacyTls: false };
let dirs: string[] = [];
let servers: Server[] = [];

afterEach(async () => {
  for (const server of servers) server.close();
  servers = [];
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  dirs = [];
});

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaydesk-lan-tls-'));
  dirs.push(dir);
  return dir;
}

/** A loopback server that does the server side of the handshake with `lanTls.wrap` and answers with the protocol. */
async function serve(lanTls: LanTls): Promise<number> {
  const server = createServer((socket) => {
    const secure = lanTls.wrap(socket);
    secure.on('error', () => undefined);
    secure.on('secure', () => secure.end(secure.getProtocol() ?? ''));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function handshake(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...options });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

const TLS1 = { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;

describe('loadLanTls', () => {
  it('generates an RSA certificate for the host name on first run, key readable by the owner only, and reuses it', async () => {
    const dir = await dataDir();
    const first = await loadLanTls(NO_FILES, dir, 'relay.contoso.local');
    expect(first.generated).toBe(true);
    expect(first.certFile).toBe(join(dir, 'tls', 'cert.pem'));
    const cert = new X509Certificate(await readFile(first.certFile));
    expect(cert.subject).toBe('CN=relay.contoso.local');
    expect(cert.subjectAltName).toContain('DNS:relay.contoso.local');
    expect(cert.publicKey.asymmetricKeyType).toBe('rsa');
    expect(new Date(cert.validTo).getTime() - Date.now()).toBeGreaterThan(9 * 365 * 24 * 3600 * 1000);
    expect((await stat(join(dir, 'tls', 'key.pem'))).mode & 0o777).toBe(0o600);

    const second = await loadLanTls(NO_FILES, dir, 'relay.contoso.local');
    expect(second.generated).toBe(false);
    expect(second.fingerprint).toBe(first.fingerprint);
  });

  it("uses the admin's certificate and key, never generating one", async () => {
    const dir = await dataDir();
    const lanTls = await loadLanTls(
      { certFile: serverCertificate.cert.file, keyFile: serverCertificate.key.file, allowLegacyTls: false },
      dir,
      'ignored',
    );
    expect(lanTls.generated).toBe(false);
    expect(lanTls.fingerprint).toBe(new X509Certificate(serverCertificate.cert.pem).fingerprint256);
    const port = await serve(lanTls);
    expect(
      await handshake(port, { ca: testCa.pem, servername: 'localhost', rejectUnauthorized: true }),
    ).toMatch(/^TLSv1\.[23]$/);
    await expect(stat(join(dir, 'tls'))).rejects.toThrow();
  });

  it('explains a missing file, a torn file and a key that belongs to another certificate', async () => {
    const dir = await dataDir();
    const torn = join(dir, 'torn.pem');
    await writeFile(torn, '-----BEGIN CERTIFICATE-----\nMIIB\n');
    const cases = [
      { certFile: join(dir, 'missing.pem'), keyFile: serverCertificate.key.file, message: /Cannot read/ },
      { certFile: torn, keyFile: serverCertificate.key.file, message: /cannot be used/ },
      {
        certFile: serverCertificate.cert.file,
        keyFile: untrustedCertificate.key.file,
        message: /cannot be used together/,
      },
    ];
    for (const { message, ...files } of cases) {
      const attempt = loadLanTls({ ...files, allowLegacyTls: false }, dir, 'x');
      await expect(attempt).rejects.toBeInstanceOf(LanTlsError);
      await expect(attempt).rejects.toThrow(message);
    }
  });

  it('admits TLS 1.0 only with allowLegacyTls, and TLS 1.2+ always', async () => {
    const dir = await dataDir();
    const strict = await serve(await loadLanTls(NO_FILES, dir, 'relay.test'));
    await expect(handshake(strict, TLS1)).rejects.toThrow();
    expect(await handshake(strict, {})).toMatch(/^TLSv1\.[23]$/);

    const legacy = await serve(await loadLanTls({ ...NO_FILES, allowLegacyTls: true }, dir, 'relay.test'));
    expect(await handshake(legacy, TLS1)).toBe('TLSv1');
    expect(
      await handshake(legacy, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: TLS1.ciphers }),
    ).toBe('TLSv1.1');
    expect(await handshake(legacy, {})).toMatch(/^TLSv1\.[23]$/);
  });
});
