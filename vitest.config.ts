import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The Windows lane's tests need Wine and run from .ci/windows-lane.sh (after npm test).
    exclude: [...configDefaults.exclude, 'test/windows/**'],
    // The tests spawn the built `relaydesk`: built here when its sources changed.
    globalSetup: ['test/fixtures/cli-build.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration tests spawn relays and emulators on loopback ports; two cores are the norm here.
    maxWorkers: 2,
  },
});
