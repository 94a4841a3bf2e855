import { defineConfig } from 'vitest/config';

// The Windows lane's end-to-end tests (.ci/windows-lane.sh): vitest on Linux drives node.exe in Wine.
export default defineConfig({
  test: {
    // The tests spawn the built `relaydesk`: built here when its sources changed.
    globalSetup: ['test/fixtures/cli-build.ts'],
    include: ['test/windows/**/*.e2e.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
