/**
 * `relaydesk lan-user add NAME`: a LAN account for devices and apps that sign in (`lanAuth.mode:
 * "check"`). The password is read from standard input, never from the command line, and only its
 * scrypt hash goes in the config file.
 */
import type { Writable } from 'node:stream';
import { saveConfigFile } from '../config/index.ts';
import { readSecretFromStdin, SecretInputError } from '../secrets/index.ts';
import { lanUserNameProblem } from '../config/lan-users.ts';
import { hashLanPassword } from '../relay/lan-auth.ts';
import {
  EXIT_CONFIG,
  loadCommandConfig,
  loadConfigOrReport,
  type CliIo,
  type ConfigFlags,
} from './context.ts';

export type LanUserFlags = ConfigFlags;

const USAGE =
  'Usage: relaydesk lan-user add NAME [--config FILE]   (the password is read from standard input)\n';

export async function lanUserCommand(args: string[], flags: LanUserFlags, io: CliIo): Promise<number> {
  const [action, name, ...extra] = args;
  if (action !== 'add' || name === undefined || extra.length > 0) {
    io.stderr.write(USAGE);
    return 64;
  }
  const problem = lanUserNameProblem(name);
  if (problem) {
    io.stderr.write(`The user name ${problem}.\n`);
    return 64;
  }
  // A config that is already broken is not made worse: nothing is written until it is fixed.
  const loaded = await loadCommandConfig(flags, io);
  if (!loaded) return EXIT_CONFIG;
  const { configPath } = loaded;

  let password: string;
  try {
    password = await readSecretFromStdin(
      io.stdin as NodeJS.ReadStream,
      io.stderr as Writable,
      `Password for LAN user ${name}: `,
    );
  } catch (error) {
    if (error instanceof SecretInputError) {
      io.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const passwordHash = await hashLanPassword(password);

  // Read again right before writing, so a change made while the password was typed is kept.
  const next = await loadConfigOrReport(configPath, io);
  if (!next) return EXIT_CONFIG;
  const existing = next.lanAuth.users.find((entry) => entry.user === name);
  if (existing) existing.passwordHash = passwordHash;
  else next.lanAuth.users.push({ user: name, passwordHash });
  await saveConfigFile(configPath, next);

  io.stdout.write(`${existing ? 'Changed the password of' : 'Added'} LAN user ${name} in ${configPath}.\n`);
  if (next.lanAuth.mode === 'ignore') {
    io.stdout.write(
      'lanAuth.mode is "ignore", so passwords are not checked yet: set it to "check" to require them.\n',
    );
  }
  io.stdout.write('Restart RelayDesk for the change to take effect.\n');
  return 0;
}
