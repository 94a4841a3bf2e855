/**
 * Bundles Electron's main process (`--mode main`: out/main/index.js, ESM) and preload (`--mode preload`:
 * out/preload/index.cjs, CommonJS, because a sandboxed preload cannot load ES modules or local files).
 * Packages from node_modules (electron, electron-log, @napi-rs/keyring) stay external: electron-builder
 * ships them. Run from the repository root: `vite build --config electron/vite.config.ts --mode main`.
 */
import { defineConfig } from 'vite';

export default defineConfig(({ mode }) => {
  const preload = mode === 'preload';
  return {
    publicDir: false,
    build: {
      ssr: preload ? 'electron/preload/index.ts' : 'electron/main/index.ts',
      outDir: preload ? 'out/preload' : 'out/main',
      emptyOutDir: true,
      // Electron 45 runs Node 22.
      target: 'node22',
      sourcemap: true,
      rollupOptions: {
        output: { format: preload ? 'cjs' : 'es', entryFileNames: preload ? 'index.cjs' : 'index.js' },
      },
    },
  };
});
