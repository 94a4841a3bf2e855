/**
 * The Windows flavour of a service's admin-group channel, run here for real (loopback TCP, a ticket
 * file): a request with the ticket's token is answered, one without it or with another is refused,
 * and the ticket goes when the relay stops. What keeps a non-member from the ticket is its folder's
 * ACL, which `relaydesk service install` sets (service-windows.test.ts reads those steps).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  claimControl,
  controlGroupDir,
  groupControlPath,
  sendControlRequest,
} from '../../electron/relay/control.ts';
import { createTeardown, tempDir } from '../integration/harness.ts';

const teardown = createTeardown();
afterEach(teardown.run);

function rawRequest(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`${line}\n`));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe('the admin group channel through a ticket (the Windows design)', () => {
  it('answers requests that carry the ticket token, refuses others, and removes the ticket on stop', async () => {
    const dataDir = teardown.dir(await tempDir());
    const controlDir = teardown.dir(await tempDir());
    const env = { RELAYDESK_CONTROL_GROUP: 'RelayDesk Admins', RELAYDESK_CONTROL_DIR: controlDir };
    const control = await claimControl(dataDir, { env, platform: 'win32' });
    teardown.add(() => control.close());
    const ticketPath = groupControlPath(dataDir, env, 'win32');
    expect(control.group).toEqual({ name: 'RelayDesk Admins', path: ticketPath });
    const ticket = JSON.parse(await readFile(ticketPath, 'utf8')) as { port: number; token: string };

    // A member, who can read the ticket, gets through: the answer is the relay's.
    const hello = await sendControlRequest(dataDir, { op: 'hello' }, 5_000, env, 'win32');
    expect(hello).toEqual({ ok: true, pid: process.pid });
    expect(await sendControlRequest(dataDir, { op: 'status' }, 5_000, env, 'win32')).toEqual({
      ok: false,
      error: 'RelayDesk is starting: try again in a moment',
    });

    // Anyone can reach a loopback port: without the token, or with a guessed one, nothing is told.
    const refused = 'Refused: this request does not carry the token of the "RelayDesk Admins" ticket';
    expect(JSON.parse(await rawRequest(ticket.port, JSON.stringify({ op: 'hello' })))).toEqual({
      ok: false,
      error: refused,
    });
    const guessed = Buffer.alloc(32, 7).toString('base64url');
    expect(
      JSON.parse(await rawRequest(ticket.port, JSON.stringify({ op: 'flush', token: guessed }))),
    ).toEqual({ ok: false, error: refused });

    await control.close();
    await expect(readFile(ticketPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('keeps a relay relaying when the ticket folder is missing, and says why members cannot drive it', async () => {
    const dataDir = teardown.dir(await tempDir());
    const env = {
      RELAYDESK_CONTROL_GROUP: 'RelayDesk Admins',
      RELAYDESK_CONTROL_DIR: join(teardown.dir(await tempDir()), 'not made by install'),
    };
    const warnings: string[] = [];
    const control = await claimControl(dataDir, {
      env,
      platform: 'win32',
      warn: (text) => warnings.push(text),
    });
    teardown.add(() => control.close());
    expect(control.group).toBeNull();
    expect(warnings).toEqual([
      `members of "RelayDesk Admins" cannot drive this relay: ${controlGroupDir(env, 'win32')} does not exist: ` +
        '`relaydesk service install` makes it, readable by "RelayDesk Admins"',
    ]);
  });

  it('skips a stale or half-written ticket and reaches a relay by its own channel', async () => {
    const dataDir = teardown.dir(await tempDir());
    const controlDir = teardown.dir(await tempDir());
    const env = { RELAYDESK_CONTROL_DIR: controlDir };
    const control = await claimControl(dataDir, { env });
    teardown.add(() => control.close());
    await writeFile(groupControlPath(dataDir, env, 'win32'), '{"port": 1, "tok');
    expect(await sendControlRequest(dataDir, { op: 'hello' }, 5_000, env, 'win32')).toEqual({
      ok: true,
      pid: process.pid,
    });
  });
});
