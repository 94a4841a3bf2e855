import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PAGE_PATH, renderTroubleshootingPage } from '../../bin/troubleshooting-page.ts';
import { DIAGNOSIS_RULES } from '../../electron/relay/diagnosis.ts';

describe('docs/troubleshooting.md', () => {
  const page = readFileSync(PAGE_PATH, 'utf8');

  it('is what `npm run docs:troubleshooting` makes of the diagnosis table now', () => {
    // On failure: run `npm run docs:troubleshooting` and commit the page with the table's change.
    expect(page === renderTroubleshootingPage(), 'docs/troubleshooting.md is stale').toBe(true);
  });

  it('gives every row its fix, its window buttons and its commands for each platform', () => {
    for (const rule of DIAGNOSIS_RULES) {
      const section = page.slice(page.indexOf(`### \`${rule.id}\``));
      const end = section.indexOf('\n### ', 1);
      const own = end === -1 ? section : section.slice(0, end);
      expect(own, rule.id).toContain('Fix: ');
      for (const action of rule.actions ?? []) expect(own, rule.id).toContain(`**${action.label}**`);
      for (const command of Object.values(rule.commands ?? {})) {
        for (const line of command.split('\n')) expect(own, rule.id).toContain(line);
      }
    }
  });

  it('finds a row by its error code', () => {
    expect(page).toMatch(/\| `5\.7\.139` \| .*`smtp-auth-disabled-tenant`/);
    expect(page).toMatch(/\| `AADSTS7000215` \| .*`token-secret-invalid`/);
    expect(page).toMatch(/\| `ECONNREFUSED` \| .*`connection-refused`/);
  });
});
