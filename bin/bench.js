#!/usr/bin/env node
// `npm run bench` compares RelayDesk with Postfix; `npm run bench -- soak [minutes]` is the long
// steady-load run that is too slow for `npm test`.
import { register } from 'tsx/esm/api';

const runs = { compare: '../bench/compare.ts', soak: '../bench/soak.ts' };
const name = process.argv[2] ?? 'compare';
if (!(name in runs)) {
  process.stderr.write(`usage: npm run bench [-- ${Object.keys(runs).join(' | ')}]\n`);
  process.exit(2);
}
register();
await import(runs[name]);
