/**
 * The layering of electron/ (README, "What is where") is enforced by ESLint: an import that points down
 * from the ground floor, or 'electron' outside the shell, is an error `npm run lint` reports.
 */
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// A path, not a URL's pathname: on Windows that is /C:/..., which ESLint cannot find a config in.
const eslint = new ESLint({ cwd: fileURLToPath(new URL('../../', import.meta.url)) });

async function refusals(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages
    .filter((message) => message.ruleId?.endsWith('no-restricted-imports'))
    .map((message) => message.message);
}

describe('the layers of electron/', () => {
  it('refuse an import from a layer above: config from the engine, the engine from the app', async () => {
    const config = await refusals(
      'electron/config/example.ts',
      "import { hashLanPassword } from '../relay/lan-auth.ts';\nexport const hash = hashLanPassword;\n",
    );
    expect(config).toHaveLength(1);
    expect(config[0]).toContain('electron/config/ may import only platform');

    const secrets = await refusals(
      'electron/secrets/example.ts',
      "import { UpstreamError } from '../relay/upstream-failure.ts';\nexport const E = UpstreamError;\n",
    );
    expect(secrets).toHaveLength(1);

    const engine = await refusals(
      'electron/relay/oauth/example.ts',
      "import { createRelayService } from '../../app/service.ts';\nexport const create = createRelayService;\n",
    );
    expect(engine).toHaveLength(1);
  });

  it('let a layer import the ones below it', async () => {
    const engine = await refusals(
      'electron/relay/oauth/example.ts',
      [
        "import { parseConfig } from '../../config/index.ts';",
        "import { createMemoryStore } from '../../secrets/index.ts';",
        "import { replaceFile } from '../../platform/fs-retry.ts';",
        "import { UpstreamError } from '../upstream-failure.ts';",
        'export const all = [parseConfig, createMemoryStore, replaceFile, UpstreamError];',
      ].join('\n'),
    );
    expect(engine).toEqual([]);
  });

  it("refuse 'electron' outside main/ and preload/, and let those two import it", async () => {
    const code = "import { app } from 'electron';\nexport const electronApp = app;\n";
    expect(await refusals('electron/app/example.ts', code)).toHaveLength(1);
    expect(await refusals('electron/relay/example.ts', code)).toHaveLength(1);
    expect(await refusals('electron/main/example.ts', code)).toEqual([]);
    expect(await refusals('electron/preload/example.ts', code)).toEqual([]);
  });

  it('keep the IPC contract and the window to types from the layers below', async () => {
    const typeOnly = "import type { Diagnosis } from '../relay/diagnosis.ts';\nexport type D = Diagnosis;\n";
    expect(await refusals('electron/shared/example.ts', typeOnly)).toEqual([]);
    const value = "import { diagnose } from '../relay/diagnosis.ts';\nexport const d = diagnose;\n";
    expect(await refusals('electron/shared/example.ts', value)).toHaveLength(1);
    const fromWindow =
      "import { diagnose } from '../../../electron/relay/diagnosis.ts';\nexport const d = diagnose;\n";
    expect(await refusals('renderer/src/lib/example.ts', fromWindow)).toHaveLength(1);
  });
});
