#!/usr/bin/env node
// Runs the built command line (out/cli/main.js, from `npm run build:cli`; `npm ci` and `npm install`
// build it through the `prepare` script, and the published package ships it).
let cli;
try {
  cli = await import('../out/cli/main.js');
} catch (error) {
  // Only the build itself missing (Windows spells the path with backslashes); anything else is a real error.
  const missing = String(error?.message).replaceAll('\\', '/');
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !missing.includes('out/cli/main.js')) throw error;
  process.stderr.write(
    'RelayDesk is not built yet: run `npm run build:cli` (or `npm ci`) in the RelayDesk folder, then try again.\n',
  );
  process.exit(1);
}
process.exitCode = await cli.main(process.argv.slice(2));
