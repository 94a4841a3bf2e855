import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../../electron/config/defaults.ts';
import type { UpstreamConfig } from '../../electron/config/types.ts';
import { secretAccount } from '../../electron/relay/secret-accounts.ts';
import type { KeychainAnswer, KeychainRequest } from '../fixtures/keychain-child.ts';
import { runCommand, startKeyringSession, type KeyringSession } from '../fixtures/keyring-session.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const childScript = fileURLToPath(new URL('../fixtures/keychain-child.ts', import.meta.url));

const upstream: UpstreamConfig = {
  ...defaultConfig().upstream,
  preset: 'microsoft365',
  host: 'smtp.office365.com',
  user: 'john@contoso.com',
};
const account = secretAccount(upstream, 'password');

let session: KeyringSession;

beforeAll(async () => {
  session = await startKeyringSession();
});

afterAll(async () => {
  await session?.stop();
});

/** One secrets operation in a fresh process, with `env` deciding which keychain it reaches. */
async function inChild(
  request: KeychainRequest,
  env: NodeJS.ProcessEnv = session.env,
): Promise<KeychainAnswer> {
  const result = await runCommand(process.execPath, ['--import', 'tsx', childScript], {
    env,
    cwd: repoRoot,
    input: JSON.stringify(request),
  });
  if (result.code !== 0) throw new Error(`keychain child exited with ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as KeychainAnswer;
}

function secretTool(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return runCommand('secret-tool', args, { env: session.env });
}

describe('OS keychain through a real Secret Service', () => {
  it('stores, reads back and deletes a secret, visible to secret-tool under service RelayDesk', async () => {
    const secret = 'Pässwörd with spaces & "quotes" 🔑';
    expect(await inChild({ op: 'set', account, secret })).toEqual({ ok: true, value: null });
    expect(await inChild({ op: 'get', account })).toEqual({ ok: true, value: secret });

    const lookup = await secretTool(['lookup', 'service', 'RelayDesk', 'username', account]);
    expect(lookup).toMatchObject({ code: 0, stdout: secret });

    expect(await inChild({ op: 'delete', account })).toEqual({ ok: true, value: true });
    expect(await inChild({ op: 'get', account })).toEqual({ ok: true, value: null });
    expect(await inChild({ op: 'delete', account })).toEqual({ ok: true, value: false });
    expect((await secretTool(['lookup', 'service', 'RelayDesk', 'username', account])).code).not.toBe(0);
  });

  it('replaces the secret of an account rather than adding a second entry', async () => {
    await inChild({ op: 'set', account, secret: 'old' });
    await inChild({ op: 'set', account, secret: 'new' });
    expect(await inChild({ op: 'get', account })).toEqual({ ok: true, value: 'new' });

    const search = await runCommand('secret-tool', ['search', '--all', 'service', 'RelayDesk'], {
      env: session.env,
    });
    expect(search.stdout.match(/^secret = /gm)).toHaveLength(1);
    await inChild({ op: 'delete', account });
  });

  it('resolves the password from the environment before the keychain', async () => {
    await inChild({ op: 'set', account, secret: 'in-keychain' });

    expect(await inChild({ op: 'resolve', kind: 'password', upstream })).toEqual({
      ok: true,
      value: { secret: 'in-keychain', source: 'keychain' },
    });
    expect(
      await inChild(
        { op: 'resolve', kind: 'password', upstream },
        { ...session.env, RELAYDESK_UPSTREAM_PASSWORD: 'in-environment' },
      ),
    ).toEqual({ ok: true, value: { secret: 'in-environment', source: 'environment' } });

    await inChild({ op: 'delete', account });
  });

  it('reports NO_SECRET when the keychain has no entry for the account', async () => {
    const answer = await inChild({ op: 'resolve', kind: 'password', upstream });
    expect(answer).toMatchObject({ ok: false, failure: { kind: 'config', code: 'NO_SECRET' } });
  });

  describe('without a D-Bus session', () => {
    let emptyRuntimeDir: string;
    let noBusEnv: NodeJS.ProcessEnv;

    beforeAll(async () => {
      // libdbus also looks for $XDG_RUNTIME_DIR/bus: point it at an empty directory.
      emptyRuntimeDir = await mkdtemp(join(tmpdir(), 'relaydesk-nobus-'));
      noBusEnv = { ...process.env, XDG_RUNTIME_DIR: emptyRuntimeDir };
      delete noBusEnv.DBUS_SESSION_BUS_ADDRESS;
    });

    afterAll(async () => {
      await rm(emptyRuntimeDir, { recursive: true, force: true });
    });

    it('says KEYCHAIN_UNAVAILABLE and names the environment variable to use instead', async () => {
      const answer = await inChild({ op: 'resolve', kind: 'password', upstream }, noBusEnv);
      expect(answer).toMatchObject({ ok: false, failure: { kind: 'config', code: 'KEYCHAIN_UNAVAILABLE' } });
      expect(answer.ok === false && answer.message).toContain('RELAYDESK_UPSTREAM_PASSWORD');
    });

    it('throws KeychainUnavailableError from the store itself', async () => {
      const answer = await inChild({ op: 'set', account, secret: 'nowhere' }, noBusEnv);
      expect(answer).toMatchObject({ ok: false, name: 'KeychainUnavailableError' });
      expect(answer.ok === false && answer.message).toMatch(/No OS keychain is reachable/);
    });

    it('still takes the secret from the environment', async () => {
      const answer = await inChild(
        { op: 'resolve', kind: 'password', upstream },
        { ...noBusEnv, RELAYDESK_UPSTREAM_PASSWORD: 'in-environment' },
      );
      expect(answer).toEqual({ ok: true, value: { secret: 'in-environment', source: 'environment' } });
    });
  });
});
