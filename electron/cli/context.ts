/**
 * What every command needs: where the data folder and the config file are, and the config itself.
 */
import { resolve } from 'node:path';
import { defaultConfigPath, defaultDataDir, formatProblems, loadConfigFile } from '../config/index.ts';
import type { RelayConfig } from '../config/types.ts';

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
}

export function dataDirFrom(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return resolve(flag ?? env.RELAYDESK_DATA_DIR ?? defaultDataDir());
}

export function configPathFrom(flag: string | undefined, dataDir: string): string {
  return resolve(flag ?? defaultConfigPath(dataDir));
}

/** The flags of every command that reads the config. */
export interface ConfigFlags {
  config?: string;
  'data-dir'?: string;
}

export interface ConfigLocation {
  dataDir: string;
  configPath: string;
}

/** `--data-dir` and `--config`, else RELAYDESK_DATA_DIR and the defaults. */
export function configLocation(flags: ConfigFlags, env: NodeJS.ProcessEnv): ConfigLocation {
  const dataDir = dataDirFrom(flags['data-dir'], env);
  return { dataDir, configPath: configPathFrom(flags.config, dataDir) };
}

/** Where a command's config is, and the config; null when it cannot be used (`loadConfigOrReport` said why). */
export async function loadCommandConfig(
  flags: ConfigFlags,
  io: CliIo,
): Promise<(ConfigLocation & { config: RelayConfig }) | null> {
  const location = configLocation(flags, io.env);
  const config = await loadConfigOrReport(location.configPath, io);
  return config && { ...location, config };
}

/** Exit status for a config that cannot be used: distinct from a runtime failure (1). */
export const EXIT_CONFIG = 2;

/**
 * Loads and validates the config; on any problem prints every one of them by field path and
 * returns null (nothing has been started yet).
 */
export async function loadConfigOrReport(configPath: string, io: CliIo): Promise<RelayConfig | null> {
  const loaded = await loadConfigFile(configPath);
  if (!loaded.exists) {
    io.stderr.write(
      `No config file at ${configPath}.\n` +
        'Create it (see docs/configuration.md for every key and a Microsoft 365 example), or pass --config FILE.\n',
    );
    return null;
  }
  if (loaded.problems.length > 0) {
    io.stderr.write(
      `The config file ${configPath} has ${loaded.problems.length} problem${loaded.problems.length === 1 ? '' : 's'}:\n` +
        `${formatProblems(loaded.problems)}\nNothing was started. Fix these and run the command again.\n`,
    );
    return null;
  }
  return loaded.config;
}

/**
 * The signals that mean "stop": SIGTERM (kill, systemd, launchd), SIGINT (Ctrl+C; also how Windows
 * service wrappers such as NSSM and WinSW stop a console program), SIGBREAK (Ctrl+Break on Windows)
 * and SIGHUP (the terminal or the Windows console window was closed: Windows then allows about 10 s).
 */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGBREAK', 'SIGHUP'] as const;

/**
 * Resolves on the first stop signal: the cue for a clean shutdown that drains what is in flight.
 * A second signal is not caught, so it ends the process at once, as a second Ctrl+C should.
 */
export function waitForStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      for (const name of STOP_SIGNALS) process.off(name, onSignal);
      resolve(signal);
    };
    for (const name of STOP_SIGNALS) process.on(name, onSignal);
  });
}
