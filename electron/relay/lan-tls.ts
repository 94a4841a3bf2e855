/**
 * TLS on the LAN side, for devices that want it: STARTTLS on a plain port and implicit TLS (the
 * "SSL" checkbox of many MFPs, port 465 style). The certificate is the admin's (`lanTls.certFile` and
 * `keyFile`) or one RelayDesk makes on first run and keeps in the data folder. Devices rarely check
 * it; what they need is a handshake they can do, which for old ones means TLS 1.0/1.1 at OpenSSL's
 * security level 0. None of this touches the upstream side, which stays TLS 1.2 or later.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls';
import { generate } from 'selfsigned';
import type { LanTlsConfig } from '../config/types.ts';

export interface LanTls {
  secureContext: SecureContext;
  /** The certificate file in use. */
  certFile: string;
  /** True when RelayDesk made the certificate during this call. */
  generated: boolean;
  /** SHA-256 fingerprint, for an admin who pins it on a device. */
  fingerprint: string;
  /** The server side of a TLS handshake on a connected socket (STARTTLS, or implicit TLS from the first byte). */
  wrap(socket: Socket): TLSSocket;
}

/** Why the LAN certificate could not be used, in words an admin can act on. */
export class LanTlsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LanTlsError';
  }
}

/** A generated certificate lasts ten years: devices rarely check dates, and nobody remembers to renew. */
const GENERATED_VALIDITY_DAYS = 3650;

export async function loadLanTls(config: LanTlsConfig, dataDir: string, hostname: string): Promise<LanTls> {
  const own = config.certFile !== null && config.keyFile !== null;
  const dir = join(dataDir, 'tls');
  const certFile = own ? config.certFile! : join(dir, 'cert.pem');
  const keyFile = own ? config.keyFile! : join(dir, 'key.pem');

  let generated = false;
  let pair = await readPair(certFile, keyFile);
  if (!pair) {
    if (own) {
      throw new LanTlsError(
        `Cannot read the LAN certificate ${certFile} or its key ${keyFile}: check lanTls.certFile and lanTls.keyFile.`,
      );
    }
    pair = await generatePair(dir, certFile, keyFile, hostname);
    generated = true;
  }

  let secureContext: SecureContext;
  try {
    secureContext = createSecureContext({
      cert: pair.cert,
      key: pair.key,
      ...(config.allowLegacyTls
        ? // OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 signatures) at its default security level 1.
          { minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }
        : { minVersion: 'TLSv1.2' }),
    });
  } catch (error) {
    throw new LanTlsError(
      `The LAN certificate ${certFile} and key ${keyFile} cannot be used together: ${(error as Error).message}`,
    );
  }
  const fingerprint = new X509Certificate(pair.cert).fingerprint256;
  return {
    secureContext,
    certFile,
    generated,
    fingerprint,
    wrap: (socket) => new TLSSocket(socket, { isServer: true, secureContext }),
  };
}

async function readPair(certFile: string, keyFile: string): Promise<{ cert: string; key: string } | null> {
  try {
    const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    // A torn or foreign file: better to say so than to fail every handshake later.
    new X509Certificate(cert);
    createPrivateKey(key);
    return { cert, key };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new LanTlsError(
      `The LAN certificate ${certFile} or its key ${keyFile} cannot be used: ${(error as Error).message}`,
    );
  }
}

async function generatePair(
  dir: string,
  certFile: string,
  keyFile: string,
  hostname: string,
): Promise<{ cert: string; key: string }> {
  const notBeforeDate = new Date(Date.now() - 24 * 60 * 60 * 1000);
  const notAfterDate = new Date(notBeforeDate.getTime() + GENERATED_VALIDITY_DAYS * 24 * 60 * 60 * 1000);
  // RSA, not EC: TLS 1.0 devices know no ECDSA.
  const pems = await generate([{ name: 'commonName', value: hostname }], {
    keyType: 'rsa',
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: hostname },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Key first and each file renamed into place: a crash leaves no certificate without its key.
  await writeAtomically(keyFile, pems.private, 0o600);
  await writeAtomically(certFile, pems.cert, 0o644);
  return { cert: pems.cert, key: pems.private };
}

async function writeAtomically(file: string, text: string, mode: number): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(temp, text, { mode, flag: 'w' });
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
