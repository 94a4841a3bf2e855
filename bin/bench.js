#!/usr/bin/env node
// `npm run bench` compares RelayDesk with Postfix; `npm run bench -- soak [minutes]` is the long
// steady-load run that is too slow for `npm test`; `npm run bench -- quick [rounds]` is RelayDesk
// alone, for trying a change (optionally with a CPU profile).
import { register } from 'tsx/esm/api';

const runs = { compare: '../bench/compare.ts', soak: '../bench/soak.ts', quick: '../bench/quick.ts' };
const name = process.argv[2] ?? 'compare';
if (!(name in runs)) {
  process.stderr.write(`usage: npm run bench [-- ${Object.keys(runs).join(' | ')}]\n`);
  process.exit(2);
}
register();
await import(runs[name]);
