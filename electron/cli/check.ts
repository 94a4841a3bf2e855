/**
 * `relaydesk check` and `relaydesk send-test --to ADDR`: the connection test and the test email,
 * with each step, the upstream's reply, and on failure what it means and how to fix it.
 */
import { checkUpstream, type CheckResult } from '../relay/check.ts';
import type { Diagnosis } from '../relay/diagnosis.ts';
import { sendTestEmail } from '../relay/send-test.ts';
import { createKeychainStore } from '../secrets/index.ts';
import { EXIT_CONFIG, loadCommandConfig, type CliIo, type ConfigFlags } from './context.ts';

export interface CheckFlags extends ConfigFlags {
  json?: boolean;
  to?: string;
}

export function formatDiagnosis(diagnosis: Diagnosis): string[] {
  const lines = [
    `  What it means: ${diagnosis.title}. ${diagnosis.explanation}`,
    `  How to fix:    ${diagnosis.fix}`,
  ];
  // The commands for this computer's platform (no PowerShell network test on Linux), and Exchange Online's.
  for (const command of diagnosis.commands) {
    lines.push(`  ${command.shell}: ${command.lines.replace(/\n/g, '\n    ')}`);
  }
  lines.push(`  (diagnosis ${diagnosis.id}, category ${diagnosis.category}; see docs/troubleshooting.md)`);
  return lines;
}

export function formatCheck(result: CheckResult): string {
  const lines = [`Checking ${result.upstream}`];
  for (const step of result.steps) {
    lines.push(
      `  ${step.ok ? 'ok  ' : step.warning ? 'warn' : 'FAIL'} ${step.name.padEnd(11)} ${String(step.ms).padStart(5)} ms  ${step.detail}`,
    );
  }
  if (result.ok) lines.push('The upstream accepts RelayDesk. Nothing was sent.');
  else {
    lines.push(`Failed: ${result.reason}`);
    if (result.diagnosis) lines.push(...formatDiagnosis(result.diagnosis));
  }
  return `${lines.join('\n')}\n`;
}

export async function checkCommand(flags: CheckFlags, io: CliIo): Promise<number> {
  const loaded = await loadCommandConfig(flags, io);
  if (!loaded) return EXIT_CONFIG;
  const { config, dataDir } = loaded;
  const result = await checkUpstream(
    config,
    { secrets: createKeychainStore(), env: io.env, dataDir },
    { dataDir },
  );
  io.stdout.write(flags.json ? `${JSON.stringify(result, null, 2)}\n` : formatCheck(result));
  return result.ok ? 0 : 1;
}

export async function sendTestCommand(flags: CheckFlags, io: CliIo): Promise<number> {
  if (!flags.to || !/^[^\s@<>]+@[^\s@<>]+$/.test(flags.to)) {
    io.stderr.write('send-test needs --to ADDRESS (for example --to john@contoso.com).\n');
    return 64;
  }
  const loaded = await loadCommandConfig(flags, io);
  if (!loaded) return EXIT_CONFIG;
  const { config, dataDir } = loaded;
  const result = await sendTestEmail(
    config,
    { secrets: createKeychainStore(), env: io.env, dataDir },
    flags.to,
  );
  if (flags.json) {
    io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else if (result.ok) {
    io.stdout.write(
      `Test message sent from ${result.from} to ${result.to}.\n  Upstream replied: ${result.reply}\n`,
    );
  } else {
    io.stdout.write(
      [
        `The test message from ${result.from} to ${result.to} was not accepted.`,
        `  Upstream replied: ${result.reply}`,
        ...(result.diagnosis ? formatDiagnosis(result.diagnosis) : []),
      ].join('\n') + '\n',
    );
  }
  return result.ok ? 0 : 1;
}
