import { defineConfig } from 'vitest/config';

// The unit tests under Node.js for Windows in Wine (.ci/windows-lane.sh). What cannot pass there is
// skipped by name with its reason (wine-skips.ts), shown in the output beside the test and
// listed at the end; a skip without a reason fails the run (skip-reporter.ts).
export default defineConfig({
  test: {
    // The tests spawn the built `relaydesk`: built here when its sources changed.
    globalSetup: ['test/fixtures/cli-build.ts'],
    include: ['test/unit/**/*.test.ts'],
    setupFiles: ['test/windows/wine-setup.ts'],
    reporters: ['default', './test/windows/skip-reporter.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
