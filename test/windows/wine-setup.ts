// Setup file of the Wine unit-test run: skips the tests wine-skips.ts names, with their reason.
import { beforeEach } from 'vitest';
import { wineSkipFor } from './wine-skips.ts';

beforeEach((context) => {
  const skip = wineSkipFor(context.task.fullName);
  if (skip) context.skip(skip.reason);
});
