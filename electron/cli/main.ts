/**
 * The `relaydesk` command line. Command names and flags are a contract: scripts depend on them.
 */
import { parseArgs } from 'node:util';
import { alertsCommand } from './alerts.ts';
import { ControlAccessError } from '../relay/control.ts';
import { checkCommand, sendTestCommand } from './check.ts';
import type { CliIo } from './context.ts';
import { lanUserCommand } from './lan-user.ts';
import { passwordCommand } from './password.ts';
import { queueCommand } from './queue.ts';
import { serveCommand } from './serve.ts';
import { serviceCommand } from './service.ts';
import { setupCommand } from './setup.ts';
import { signInCommand, signOutCommand } from './signin.ts';
import { statusCommand } from './status.ts';

const USAGE = `RelayDesk: an SMTP relay from office devices to Microsoft 365 and other smart hosts.

Usage: relaydesk <command> [options]

  setup [--config FILE] [--data-dir DIR]     set RelayDesk up in the terminal: provider, mailbox, password,
                                             connection test, port, devices, test email
  serve [--config FILE] [--data-dir DIR]     run the relay in the foreground until Ctrl+C / SIGTERM
                                             (no config yet: serves the setup window on 127.0.0.1:8025)
        [--admin HOST:PORT]                  ... and the RelayDesk window in a browser (e.g. 127.0.0.1:8025)
        [--health HOST:PORT]                 ... and /healthz, /metrics for monitoring (e.g. 127.0.0.1:9325)
  status [--data-dir DIR] [--json]           listener, upstream state, queue counts, today's counters;
                                             exits 0 healthy, 1 needs attention, 2 not running or held
  queue list [--json]                        the messages waiting, deferred, held or failed
  queue flush                                retry everything now
  queue retry ID                             retry one message now (also a failed one)
  queue delete ID                            delete one message
  check [--config FILE] [--json]             test the upstream: connect, EHLO, STARTTLS, AUTH (sends nothing)
  send-test --to ADDR [--config FILE]        send a test message through the upstream, show its reply
  signin [--config FILE] [--device-code]     sign in with Microsoft as the mailbox's user (delegated OAuth 2.0):
         [--no-browser]                      opens the browser, or shows a code to enter on another device
  signout [--config FILE]                    forget that sign-in (removes it from the OS keychain)
  password set [--config FILE]               store the upstream password (OAuth/Graph: the client secret)
                                             in the OS keychain, read from standard input
  password clear [--config FILE]             remove it from the keychain
  lan-user add NAME [--config FILE]          add a LAN user for devices that sign in (lanAuth "check"),
                                             the password read from standard input
  service print [--config FILE] [--data-dir DIR] [--for windows|systemd|launchd]
                                             show the service definition that install writes (docs/service.md)
  service install|uninstall|status           run the relay from boot as a system service (systemd: done here;
                                             macOS, Windows: prints the commands to run as administrator)
          [--add-admin USER]                 install: who joins the admin group that may drive the service
                                             (default: you; see docs/service.md "Who can drive the service")

--data-dir defaults to the per-user app-data folder (~/.config/RelayDesk on Linux,
~/Library/Application Support/RelayDesk on macOS, %APPDATA%\\RelayDesk on Windows);
--config defaults to config.json inside it. See docs/ for configuration and troubleshooting.
`;

const OPTIONS = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  admin: { type: 'string' },
  health: { type: 'string' },
  json: { type: 'boolean' },
  to: { type: 'string' },
  'device-code': { type: 'boolean' },
  'no-browser': { type: 'boolean' },
  for: { type: 'string' },
  'add-admin': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parse(argv: string[]) {
  return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
}

type Command = (words: string[], flags: ReturnType<typeof parse>['values'], io: CliIo) => Promise<number>;

/** Each command by its name, given the words after the name (`queue retry ID`) and the flags. */
const COMMANDS: Record<string, Command> = {
  serve: (_words, flags, io) => serveCommand(flags, io),
  setup: (_words, flags, io) => setupCommand(flags, io),
  status: (_words, flags, io) => statusCommand(flags, io),
  queue: queueCommand,
  check: (_words, flags, io) => checkCommand(flags, io),
  'send-test': (_words, flags, io) => sendTestCommand(flags, io),
  password: passwordCommand,
  signin: (_words, flags, io) => signInCommand(flags, io),
  signout: (_words, flags, io) => signOutCommand(flags, io),
  'lan-user': lanUserCommand,
  alerts: alertsCommand,
  service: serviceCommand,
};

export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n\n${USAGE}`);
    return 64;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || !command || command === 'help') {
    io.stdout.write(USAGE);
    return command || values.help ? 0 : 64;
  }
  // Only the table's own names: `constructor` or `toString` is an unknown command, not a crash.
  if (!Object.hasOwn(COMMANDS, command)) {
    io.stderr.write(`Unknown command "${command}".\n\n${USAGE}`);
    return 64;
  }
  try {
    return await COMMANDS[command]!(rest, values, io);
  } catch (error) {
    // A service's channel that shuts this account out: the message says who may and how to join.
    if (!(error instanceof ControlAccessError)) throw error;
    io.stderr.write(`${error.message}\n`);
    return command === 'status' ? 2 : 1;
  }
}

function defaultIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}
