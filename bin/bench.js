#!/usr/bin/env node
// `npm run bench` compares RelayDesk with Postfix; `npm run bench -- soak [minutes]` is the long
// steady-load run that is too slow for `npm test`; `npm run bench -- quick [rounds]` is RelayDesk
// alone, for trying a change (optionally with a CPU profile).
import { accessSync, constants } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { register } from 'tsx/esm/api';

const runs = {
  compare: { module: '../bench/compare.ts', tools: ['smtp-sink', 'smtp-source', 'postfix'], root: true },
  soak: { module: '../bench/soak.ts', tools: ['smtp-sink'], root: false },
  quick: { module: '../bench/quick.ts', tools: ['smtp-sink', 'smtp-source'], root: false },
};
const name = process.argv[2] ?? 'compare';
const chosen = runs[name];
if (!chosen) {
  process.stderr.write(`usage: npm run bench [-- ${Object.keys(runs).join(' | ')}]\n`);
  process.exit(2);
}

// Debian installs Postfix's tools in /usr/sbin, which a normal user's PATH may lack.
const searchPath = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
process.env.PATH = searchPath.join(delimiter);
const missing = chosen.tools.filter(
  (tool) => !searchPath.some((dir) => hasAccess(join(dir, tool), constants.X_OK)),
);
const problems = [];
if (missing.length > 0) {
  problems.push(`${missing.join(', ')} not found: install Postfix (Debian/Ubuntu: apt-get install postfix)`);
}
if (chosen.root && process.getuid?.() !== 0) {
  problems.push('the comparison starts Postfix as the peer relay, which needs root: run it with sudo');
}
// The peer script lives beside the repository; a checkout elsewhere (a git worktree) names it.
const peerScript = resolve(
  process.env.RELAYDESK_BENCH_PEER ?? resolve(import.meta.dirname, '../../shared/peer/postfix-relay.sh'),
);
process.env.RELAYDESK_BENCH_PEER = peerScript;
if (name === 'compare' && !hasAccess(peerScript, constants.R_OK)) {
  problems.push(`the peer relay script is missing: ${peerScript} (or set RELAYDESK_BENCH_PEER to its path)`);
}
if (problems.length > 0) {
  process.stderr.write(`npm run bench${name === 'compare' ? '' : ` -- ${name}`} cannot run here:\n`);
  for (const problem of problems) process.stderr.write(`  - ${problem}\n`);
  process.exit(2);
}

register();
await import(chosen.module);

function hasAccess(path, mode) {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}
