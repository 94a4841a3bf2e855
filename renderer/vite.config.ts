/**
 * Builds the window: `vite build renderer` (root = this folder) writes renderer/dist, loaded by
 * Electron from disk and served by `relaydesk serve --admin`. Relative asset paths work for both.
 */
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Electron 45's Chromium and current browsers: no legacy transforms needed.
    target: 'es2022',
    // Inline assets would need `data:` in script-src or style-src; keep every asset a file.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
