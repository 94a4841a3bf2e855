import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../electron/config/defaults.ts';
import type { UpstreamConfig } from '../../electron/config/types.ts';
import {
  KeychainUnavailableError,
  SecretInputError,
  createMemoryStore,
  readSecretFromStdin,
  type SecretStore,
} from '../../electron/secrets/index.ts';
import {
  deleteSecret,
  resolveSecret,
  secretAccount,
  storeSecret,
} from '../../electron/relay/secret-accounts.ts';
import { failureOf } from '../fixtures/upstream-failures.ts';

const passwordUpstream: UpstreamConfig = {
  ...defaultConfig().upstream,
  preset: 'microsoft365',
  host: 'smtp.office365.com',
  user: 'john@contoso.com',
};

const oauthUpstream: UpstreamConfig = {
  ...passwordUpstream,
  auth: 'oauth2',
  oauth2: {
    tenant: 'contoso.onmicrosoft.com',
    clientId: '6731de76-14a6-49ae-97bc-6eba6914391e',
    grant: 'client_credentials',
    authorityUrl: 'https://login.microsoftonline.com',
    tokenUrl: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token',
  },
};

describe('secretAccount', () => {
  it('names the password by mailbox and smart host, and the client secret by tenant and app', () => {
    expect(secretAccount(passwordUpstream, 'password')).toBe('smtp:john@contoso.com@smtp.office365.com');
    expect(secretAccount(oauthUpstream, 'client-secret')).toBe(
      'oauth2:contoso.onmicrosoft.com:6731de76-14a6-49ae-97bc-6eba6914391e',
    );
  });

  it('ignores case, as Microsoft does for addresses, hosts and ids', () => {
    const shouting = { ...passwordUpstream, user: 'John@Contoso.COM', host: 'SMTP.office365.com' };
    expect(secretAccount(shouting, 'password')).toBe(secretAccount(passwordUpstream, 'password'));
  });

  it('refuses an upstream without the fields the account is made of', () => {
    expect(() => secretAccount({ ...passwordUpstream, user: null }, 'password')).toThrow(/upstream\.user/);
    expect(() => secretAccount(passwordUpstream, 'client-secret')).toThrow(/upstream\.oauth2/);
  });
});

describe('createMemoryStore', () => {
  it('keeps, replaces and deletes secrets per account', async () => {
    const store = createMemoryStore();
    expect(await store.get('a')).toBeNull();
    await store.set('a', 'first');
    await store.set('a', 'second');
    await store.set('b', 'other');
    expect(await store.get('a')).toBe('second');
    expect(await store.delete('a')).toBe(true);
    expect(await store.delete('a')).toBe(false);
    expect(await store.get('a')).toBeNull();
    expect(await store.get('b')).toBe('other');
  });
});

describe('resolveSecret', () => {
  it('prefers RELAYDESK_UPSTREAM_PASSWORD over the keychain', async () => {
    const store = createMemoryStore();
    await store.set(secretAccount(passwordUpstream, 'password'), 'from-keychain');
    const env = { RELAYDESK_UPSTREAM_PASSWORD: 'from-env' };

    expect(await resolveSecret('password', passwordUpstream, { env, store })).toEqual({
      secret: 'from-env',
      source: 'environment',
    });
    expect(await resolveSecret('password', passwordUpstream, { env: {}, store })).toEqual({
      secret: 'from-keychain',
      source: 'keychain',
    });
  });

  it('treats an empty environment variable as unset', async () => {
    const store = createMemoryStore();
    await store.set(secretAccount(passwordUpstream, 'password'), 'from-keychain');
    const resolved = await resolveSecret('password', passwordUpstream, {
      env: { RELAYDESK_UPSTREAM_PASSWORD: '' },
      store,
    });
    expect(resolved.source).toBe('keychain');
  });

  it('reads the client secret from RELAYDESK_CLIENT_SECRET, not from the password variable', async () => {
    const store = createMemoryStore();
    await store.set(secretAccount(oauthUpstream, 'client-secret'), 'client-secret-in-keychain');

    const env = {
      RELAYDESK_UPSTREAM_PASSWORD: 'a-password',
      RELAYDESK_CLIENT_SECRET: 'client-secret-in-env',
    };
    expect(await resolveSecret('client-secret', oauthUpstream, { env, store })).toEqual({
      secret: 'client-secret-in-env',
      source: 'environment',
    });
    expect(
      await resolveSecret('client-secret', oauthUpstream, {
        env: { RELAYDESK_UPSTREAM_PASSWORD: 'a-password' },
        store,
      }),
    ).toEqual({ secret: 'client-secret-in-keychain', source: 'keychain' });
  });

  it('sends a stored client secret only to the token endpoint it was stored for', async () => {
    const store = createMemoryStore();
    await storeSecret(store, 'client-secret', oauthUpstream, 'the-secret');
    expect(await resolveSecret('client-secret', oauthUpstream, { env: {}, store })).toEqual({
      secret: 'the-secret',
      source: 'keychain',
    });
    const elsewhere: UpstreamConfig = {
      ...oauthUpstream,
      oauth2: { ...oauthUpstream.oauth2!, tokenUrl: 'https://attacker.example/x/oauth2/v2.0/token' },
    };
    const failure = await failureOf(resolveSecret('client-secret', elsewhere, { env: {}, store }));
    expect(failure).toMatchObject({ kind: 'config', code: 'SECRET_FOR_OTHER_HOST' });
    const message = failure.kind === 'config' ? failure.message : '';
    expect(message).toContain('stored for https://login.microsoftonline.com');
    expect(message).toContain('not to https://attacker.example');
    expect(message).not.toContain('the-secret');

    // Typed again for the new endpoint, it belongs there and no longer to the old one.
    await storeSecret(store, 'client-secret', elsewhere, 'typed-again');
    expect((await resolveSecret('client-secret', elsewhere, { env: {}, store })).secret).toBe('typed-again');
    expect(await failureOf(resolveSecret('client-secret', oauthUpstream, { env: {}, store }))).toMatchObject({
      code: 'SECRET_FOR_OTHER_HOST',
    });
    expect(await deleteSecret(store, 'client-secret', elsewhere)).toBe(true);
    expect(await failureOf(resolveSecret('client-secret', elsewhere, { env: {}, store }))).toMatchObject({
      code: 'NO_SECRET',
    });
  });

  it('keeps secrets stored before endpoints were recorded: a client secret for Microsoft only', async () => {
    const store = createMemoryStore();
    await store.set(secretAccount(oauthUpstream, 'client-secret'), 'legacy');
    expect((await resolveSecret('client-secret', oauthUpstream, { env: {}, store })).secret).toBe('legacy');
    const loopback: UpstreamConfig = {
      ...oauthUpstream,
      oauth2: { ...oauthUpstream.oauth2!, tokenUrl: 'http://127.0.0.2:8080/t/oauth2/v2.0/token' },
    };
    expect(await failureOf(resolveSecret('client-secret', loopback, { env: {}, store }))).toMatchObject({
      code: 'SECRET_FOR_OTHER_HOST',
    });
  });

  it('says how to store the secret when neither the environment nor the keychain has it', async () => {
    const failure = await failureOf(
      resolveSecret('password', passwordUpstream, { env: {}, store: createMemoryStore() }),
    );
    expect(failure).toMatchObject({ kind: 'config', code: 'NO_SECRET' });
    const message = failure.kind === 'config' ? failure.message : '';
    expect(message).toContain('RELAYDESK_UPSTREAM_PASSWORD');
    expect(message).toContain('relaydesk password set');
    expect(message).toContain('john@contoso.com');

    const clientFailure = await failureOf(
      resolveSecret('client-secret', oauthUpstream, { env: {}, store: createMemoryStore() }),
    );
    expect(clientFailure).toMatchObject({ kind: 'config', code: 'NO_SECRET' });
    expect(clientFailure.kind === 'config' && clientFailure.message).toContain('RELAYDESK_CLIENT_SECRET');
  });

  it('turns an unreachable keychain into KEYCHAIN_UNAVAILABLE that names the way out', async () => {
    const unreachable: SecretStore = {
      ...createMemoryStore(),
      get: async () => {
        throw new KeychainUnavailableError('DBus error: no session bus');
      },
    };
    const failure = await failureOf(
      resolveSecret('client-secret', oauthUpstream, { env: {}, store: unreachable }),
    );
    expect(failure).toMatchObject({ kind: 'config', code: 'KEYCHAIN_UNAVAILABLE' });
    expect(failure.kind === 'config' && failure.message).toContain('RELAYDESK_CLIENT_SECRET');
  });
});

/** A stand-in for a terminal's stdin: a stream with isTTY and setRawMode, recording the mode. */
function fakeTerminal(): PassThrough & { isTTY: true; rawModes: boolean[]; setRawMode(mode: boolean): void } {
  const rawModes: boolean[] = [];
  return Object.assign(new PassThrough(), {
    isTTY: true as const,
    rawModes,
    setRawMode(mode: boolean) {
      rawModes.push(mode);
    },
  });
}

function collect(stream: PassThrough): () => string {
  let written = '';
  stream.on('data', (chunk: Buffer) => (written += chunk.toString('utf8')));
  return () => written;
}

describe('readSecretFromStdin', () => {
  it('reads the first line of a pipe, removing only the line ending', async () => {
    const stdin = new PassThrough();
    const stderr = new PassThrough();
    const shown = collect(stderr);
    const reading = readSecretFromStdin(stdin, stderr, 'Password: ');
    stdin.end(' pa ss wörd \r\nsecond line\n');
    expect(await reading).toBe(' pa ss wörd ');
    expect(shown()).toBe('');
  });

  it('takes input without a final newline, even split inside a character', async () => {
    const stdin = new PassThrough();
    const reading = readSecretFromStdin(stdin, new PassThrough(), 'Password: ');
    const bytes = Buffer.from('sécret', 'utf8');
    stdin.write(bytes.subarray(0, 2));
    stdin.end(bytes.subarray(2));
    expect(await reading).toBe('sécret');
  });

  it('rejects empty input', async () => {
    const stdin = new PassThrough();
    const reading = readSecretFromStdin(stdin, new PassThrough(), 'Password: ');
    stdin.end('\n');
    await expect(reading).rejects.toMatchObject({ name: 'SecretInputError', code: 'empty' });
  });

  it('on a terminal shows the prompt, echoes nothing and honours Backspace', async () => {
    const stdin = fakeTerminal();
    const stderr = new PassThrough();
    const shown = collect(stderr);
    const reading = readSecretFromStdin(stdin, stderr, 'Password: ');
    stdin.write('hunterX\u007f2');
    stdin.write('\r');
    expect(await reading).toBe('hunter2');
    expect(shown()).toBe('Password: \n');
    expect(stdin.rawModes).toEqual([true, false]);
  });

  it('on a terminal cancels on Ctrl-C and leaves raw mode', async () => {
    const stdin = fakeTerminal();
    const reading = readSecretFromStdin(stdin, new PassThrough(), 'Password: ');
    stdin.write('abc\u0003');
    const error = await reading.catch((rejected: unknown) => rejected);
    expect(error).toBeInstanceOf(SecretInputError);
    expect(error).toMatchObject({ code: 'aborted' });
    expect(stdin.rawModes).toEqual([true, false]);
  });
});
