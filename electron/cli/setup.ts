/**
 * `relaydesk setup`: the window's setup wizard in the terminal, for a server reached over SSH.
 * Provider, mailbox, secret (never echoed, stored in the OS keychain, or taken from the
 * environment on a server without one), a connection test, the port, the devices, and a test
 * email. The config is written only once it validates; nothing is half-saved.
 */
import type { Readable, Writable } from 'node:stream';
import { access } from 'node:fs/promises';
import { applyPreset, defaultConfig, formatProblems, parseConfig, saveConfigFile } from '../config/index.ts';
import type { RelayConfig } from '../config/types.ts';
import { checkUpstream } from '../relay/check.ts';
import { sendTestEmail } from '../relay/send-test.ts';
import {
  createKeychainStore,
  KeychainUnavailableError,
  readSecretFromStdin,
  SecretInputError,
} from '../secrets/index.ts';
import { secretEnvName, storeSecret } from '../relay/secret-accounts.ts';
import { formatCheck, formatDiagnosis } from './check.ts';
import { configLocation, type CliIo, type ConfigFlags } from './context.ts';

export type SetupFlags = ConfigFlags;

/** Reads answers a line at a time from a terminal or a pipe (`relaydesk setup < answers.txt`). */
function lineReader(stdin: Readable) {
  let buffered = '';
  let ended = false;
  const waiting: (() => void)[] = [];
  stdin.setEncoding('utf8');
  stdin.on('data', (chunk: string) => {
    buffered += chunk;
    waiting.splice(0).forEach((wake) => wake());
  });
  stdin.on('end', () => {
    ended = true;
    waiting.splice(0).forEach((wake) => wake());
  });
  return {
    async next(): Promise<string | null> {
      for (;;) {
        const newline = buffered.indexOf('\n');
        if (newline >= 0) {
          const line = buffered.slice(0, newline).replace(/\r$/, '');
          buffered = buffered.slice(newline + 1);
          return line;
        }
        if (ended) {
          const rest = buffered;
          buffered = '';
          return rest.length > 0 ? rest : null;
        }
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
    },
    pause: () => stdin.pause(),
  };
}

class SetupCancelled extends Error {}

export async function setupCommand(flags: SetupFlags, io: CliIo): Promise<number> {
  const { dataDir, configPath } = configLocation(flags, io.env);
  const out = io.stderr as Writable;
  const stdin = io.stdin as Readable & { isTTY?: boolean };
  const lines = lineReader(stdin);

  async function ask(question: string, fallback = ''): Promise<string> {
    out.write(fallback ? `${question} [${fallback}]: ` : `${question}: `);
    const answer = await lines.next();
    if (answer === null) throw new SetupCancelled('The input ended before the setup was complete.');
    if (!stdin.isTTY) out.write('\n');
    return answer.trim() || fallback;
  }

  async function choose<T extends string>(question: string, options: [T, string][], fallback: T): Promise<T> {
    out.write(`${question}\n${options.map(([, label], i) => `  ${i + 1}) ${label}`).join('\n')}\n`);
    for (let tries = 0; tries < 5; tries += 1) {
      const answer = await ask('Choose a number', String(options.findIndex(([key]) => key === fallback) + 1));
      const picked = options[Number(answer) - 1];
      if (picked) return picked[0];
      out.write(`Type a number from 1 to ${options.length}.\n`);
    }
    throw new SetupCancelled('No valid choice.');
  }

  async function askSecret(what: string): Promise<string> {
    if (stdin.isTTY) {
      lines.pause();
      return readSecretFromStdin(stdin as NodeJS.ReadStream, out, `${what} (not shown as you type): `);
    }
    out.write(`${what}: `);
    const answer = await lines.next();
    out.write('\n');
    if (!answer) throw new SecretInputError('empty');
    return answer;
  }

  try {
    try {
      await access(configPath);
      out.write(`A config already exists at ${configPath}.\n`);
      if ((await ask('Replace it? (yes/no)', 'no')).toLowerCase() !== 'yes') {
        out.write('Nothing changed. Edit it, or run `relaydesk check` to test it.\n');
        return 0;
      }
    } catch {
      // No config yet: the usual first run.
    }
    out.write(`RelayDesk setup. The config goes to ${configPath}.\n\n`);
    let config: RelayConfig = defaultConfig();

    const provider = await choose(
      'Where should RelayDesk deliver the mail?',
      [
        ['microsoft365', 'Microsoft 365 (smtp.office365.com, port 587, STARTTLS)'],
        ['other', 'Another mail server (smart host)'],
      ],
      'microsoft365',
    );
    if (provider === 'microsoft365') {
      config = { ...config, upstream: applyPreset(config.upstream, 'microsoft365') };
    } else {
      const host = await ask('Mail server name (e.g. mail.example.com)');
      const security = await choose(
        'Encryption to that server:',
        [
          ['starttls', 'STARTTLS (usually port 587)'],
          ['tls', 'TLS from the start (usually port 465)'],
        ],
        'starttls',
      );
      const port = Number(await ask('Port', security === 'tls' ? '465' : '587'));
      config = { ...config, upstream: { ...config.upstream, preset: 'custom', host, port, security } };
    }

    const user = await ask('The mailbox RelayDesk signs in as (e.g. scanner@contoso.com)');
    config = { ...config, upstream: { ...config.upstream, auth: 'password', user } };
    if (provider === 'microsoft365') {
      out.write(
        'Note: Microsoft turns off password (basic) sign-in for SMTP by default at the end of December 2026.\n' +
          'For a lasting setup use OAuth 2.0 (docs/microsoft365.md); a password works until then where it is allowed.\n',
      );
    }

    const envName = secretEnvName('password');
    if (io.env[envName]) {
      out.write(`Using the password in ${envName} from the environment (it is not stored anywhere).\n`);
    } else {
      const store = createKeychainStore();
      const secret = await askSecret(`Password of ${user}`);
      try {
        await storeSecret(store, 'password', config.upstream, secret);
        out.write(`Stored in ${store.describe()}.\n`);
      } catch (error) {
        if (!(error instanceof KeychainUnavailableError)) throw error;
        out.write(
          `${error.message}\nOn a server without a keychain, set ${envName} in the relay's environment instead (for a service: its unit or service definition), then run setup again.\n`,
        );
        return 1;
      }
    }

    out.write('\nTesting the connection (nothing is sent)...\n');
    const check = await checkUpstream(config, { secrets: createKeychainStore(), env: io.env }, { dataDir });
    out.write(formatCheck(check));
    if (
      !check.ok &&
      (await ask('Save the setup anyway and fix this later? (yes/no)', 'no')).toLowerCase() !== 'yes'
    ) {
      out.write('Nothing was saved. Fix what the test says, then run `relaydesk setup` again.\n');
      return 1;
    }

    const port = Number(await ask('Port the devices send to', '25'));
    const devices = await ask(
      'Addresses of the devices allowed to send (IP addresses or ranges such as 192.168.1.0/24, separated by commas)',
      '127.0.0.1',
    );
    config = {
      ...config,
      listen: { ...config.listen, port },
      allowedClients: devices
        .split(',')
        .map((entry) => entry.trim())
        .filter(Boolean),
    };

    const parsed = parseConfig(JSON.parse(JSON.stringify(config)) as unknown);
    if (parsed.problems.length > 0) {
      out.write(
        `The setup has ${parsed.problems.length} problem(s); nothing was saved:\n${formatProblems(parsed.problems)}\n`,
      );
      return 1;
    }
    await saveConfigFile(configPath, parsed.config);
    out.write(`Saved ${configPath}.\n`);

    const to = await ask('Send a test email to (empty to skip)', user);
    if (to) {
      const sent = await sendTestEmail(parsed.config, { secrets: createKeychainStore(), env: io.env }, to);
      out.write(
        sent.ok
          ? `Test email sent to ${sent.to}. The server said: ${sent.reply}\n`
          : [
              `The test email was not accepted: ${sent.reply}`,
              ...(sent.diagnosis ? formatDiagnosis(sent.diagnosis) : []),
            ].join('\n') + '\n',
      );
    }
    out.write(
      `\nDone. Start the relay with: relaydesk serve${flags['data-dir'] ? ` --data-dir ${dataDir}` : ''}\n` +
        `Then point the devices at this computer, port ${port}, no encryption, no sign-in.\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof SetupCancelled || error instanceof SecretInputError) {
      out.write(`\n${error.message} Nothing was saved.\n`);
      return 1;
    }
    throw error;
  } finally {
    stdin.pause();
  }
}
