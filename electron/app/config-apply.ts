/**
 * The config the app runs with: loaded at start, checked, and applied from the window without a
 * restart of the app (the spool is on disk, so stop + start keeps the queue). A config is saved only
 * once the relay started with it; one that cannot start leaves the previous one running.
 */
import {
  defaultConfig,
  loadConfigFile,
  parseConfig,
  PRESET_NAMES,
  PRESETS,
  presetFields,
  saveConfigFile,
  type LoadedConfig,
} from '../config/index.ts';
import type { ConfigProblem, RelayConfig } from '../config/types.ts';
import { createClientMatcher, type ClientMatcher } from '../relay/access.ts';
import type { Logger } from '../relay/log.ts';
import type { ApplyResult, ConfigView } from '../shared/ipc.ts';
import { startProblem, type RelayLifecycle } from './relay-lifecycle.ts';
import type { UpstreamSecrets } from './upstream-secrets.ts';

export interface ConfigApplyDeps {
  configPath: string;
  logger: Logger;
  lifecycle: RelayLifecycle;
  upstreamSecrets: UpstreamSecrets;
  /** Describes the secret store for the window (`Secret Service, service "RelayDesk"`). */
  secretStore(): string;
  /** Something the status shows changed. */
  changed(): void;
}

export interface AppConfig {
  /** The config in use (the defaults before the first load and on a first run). */
  readonly config: RelayConfig;
  /** False on a first run: no config file yet. */
  readonly exists: boolean;
  /** What is wrong with the config file, when it could not be used. */
  readonly problems: ConfigProblem[];
  /** Which devices the config in use lets relay. */
  readonly matcher: ClientMatcher;
  /** Reads the config file; the caller decides whether to start the relay with it. */
  load(): Promise<LoadedConfig>;
  /** Validates, starts the relay with it (queue kept), then saves it; refuses with problems by path. */
  apply(raw: unknown): Promise<ApplyResult>;
  /** The config and where its secrets come from, for the window's settings. */
  view(): Promise<ConfigView>;
}

export function createAppConfig(deps: ConfigApplyDeps): AppConfig {
  const { configPath, logger, lifecycle, upstreamSecrets, changed } = deps;
  let config: RelayConfig = defaultConfig();
  let exists = false;
  let problems: ConfigProblem[] = [];
  let matcher: ClientMatcher = createClientMatcher(config.allowedClients);

  async function apply(raw: unknown): Promise<ApplyResult> {
    const parsed = parseConfig(raw);
    if (parsed.problems.length > 0) return { ok: false, problems: parsed.problems };
    const next = parsed.config;
    const secretProblem = upstreamSecrets.environmentProblem(next.upstream);
    if (secretProblem) return { ok: false, problems: [secretProblem] };
    return lifecycle.exclusive(async () => {
      if (lifecycle.state === 'paused') {
        await saveConfigFile(configPath, next);
      } else {
        const wasRunning = lifecycle.relay !== null;
        await lifecycle.stop();
        try {
          await lifecycle.run(next);
        } catch (error) {
          const problem = startProblem(error, next);
          logger.warn('config-not-applied', { path: problem.path, reason: problem.message });
          if (wasRunning) await lifecycle.tryStart(config);
          else lifecycle.settle(exists ? 'failed' : 'unconfigured');
          changed();
          return { ok: false, problems: [problem] };
        }
        await saveConfigFile(configPath, next);
      }
      config = next;
      exists = true;
      problems = [];
      upstreamSecrets.bindEnvironment(next.upstream);
      matcher = createClientMatcher(next.allowedClients);
      logger.info('config-applied', { file: configPath, allowedClients: next.allowedClients });
      changed();
      return { ok: true, problems: [] };
    });
  }

  return {
    get config() {
      return config;
    },
    get exists() {
      return exists;
    },
    get problems() {
      return problems;
    },
    get matcher() {
      return matcher;
    },
    async load() {
      const loaded = await loadConfigFile(configPath);
      config = loaded.config;
      exists = loaded.exists;
      problems = loaded.problems;
      matcher = createClientMatcher(config.allowedClients);
      return loaded;
    },
    apply,
    async view() {
      return {
        config,
        exists,
        problems,
        secrets: {
          password: await upstreamSecrets.source('password', config.upstream),
          clientSecret: await upstreamSecrets.source('client-secret', config.upstream),
        },
        secretStore: deps.secretStore(),
        presets: PRESET_NAMES.map((id) => ({
          id,
          label: PRESETS[id].label,
          notes: PRESETS[id].notes,
          fields: presetFields(id),
        })),
      };
    },
  };
}
