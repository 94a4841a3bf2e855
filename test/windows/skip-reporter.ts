/**
 * Lists every test the Wine run skipped, with its reason, and fails the run for a skip without one
 * (e.g. a `runIf(linux)` that wine-skips.ts does not explain) and for an entry of wine-skips.ts that
 * matches no test of the files that ran, so that the list stays exactly what is skipped.
 */
import type { Reporter, TestModule } from 'vitest/node';
import { wineSkipFor, wineSkips, type WineSkip } from './wine-skips.ts';

export default class WineSkipReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const used = new Set<WineSkip>();
    const lines: string[] = [];
    const unexplained: string[] = [];
    const ranFiles = new Set(testModules.map((testModule) => testModule.relativeModuleId));
    for (const testModule of testModules) {
      for (const testCase of testModule.children.allTests()) {
        const name = `${testModule.relativeModuleId} > ${testCase.fullName}`;
        const skip = wineSkipFor(name);
        if (skip) used.add(skip);
        const result = testCase.result();
        if (result.state !== 'skipped') continue;
        const reason = result.note ?? skip?.reason;
        if (reason) lines.push(`  ↓ ${name}\n      ${reason}`);
        else unexplained.push(name);
      }
    }
    console.log(`\nSkipped under Wine (${lines.length}), each with its reason:\n${lines.join('\n')}\n`);
    const problems = [
      ...unexplained.map(
        (name) => `skipped without a reason (add it to test/windows/wine-skips.ts): ${name}`,
      ),
      ...wineSkips
        .filter((skip) => ranFiles.has(skip.test.split(' > ')[0]!) && !used.has(skip))
        .map((skip) => `test/windows/wine-skips.ts names a test that does not exist: ${skip.test}`),
    ];
    if (problems.length > 0) {
      console.error(problems.join('\n'));
      process.exitCode = 1;
    }
  }
}
