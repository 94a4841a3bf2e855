/**
 * One build for everything that runs in Node, so no TypeScript is compiled at run time:
 * - `--mode main`: Electron's main process, out/main/index.js (ESM);
 * - `--mode preload`: its preload, out/preload/index.cjs (CommonJS, because a sandboxed preload
 *   cannot load ES modules or local files);
 * - `--mode cli`: the `relaydesk` command line, out/cli/main.js (ESM), loaded by bin/relaydesk.js.
 * Packages from node_modules (electron, electron-log, @napi-rs/keyring, selfsigned) stay external:
 * electron-builder ships them, and npm installs them as dependencies of the CLI.
 * Run from the repository root: `vite build --config electron/vite.config.ts --mode main`.
 */
import { defineConfig } from 'vite';

const ENTRIES = {
  main: { entry: 'electron/main/index.ts', outDir: 'out/main', file: 'index.js', format: 'es' },
  preload: { entry: 'electron/preload/index.ts', outDir: 'out/preload', file: 'index.cjs', format: 'cjs' },
  cli: { entry: 'electron/cli/main.ts', outDir: 'out/cli', file: 'main.js', format: 'es' },
} as const;

export default defineConfig(({ mode }) => {
  const target = ENTRIES[mode as keyof typeof ENTRIES];
  if (!target) throw new Error(`--mode is one of ${Object.keys(ENTRIES).join(', ')} (got "${mode}")`);
  const cli = mode === 'cli';
  return {
    publicDir: false,
    build: {
      ssr: target.entry,
      outDir: target.outDir,
      emptyOutDir: true,
      // Electron 45 runs Node 22; the command line runs on the Node the README asks for.
      target: cli ? 'node20' : 'node22',
      // Every `relaydesk` command loads the CLI: no source map to read on that path.
      sourcemap: !cli,
      rollupOptions: {
        output: { format: target.format, entryFileNames: target.file },
      },
    },
  };
});
