import { defineConfig } from 'vitest/config';

// Workspace packages export their TypeScript sources under the `source` condition,
// so tests run against src/ without a build step. No explicit 'import': Vite adds import/require
// itself per call site, and forcing 'import' makes pg's require('pg-pool') get the ESM build
// ("Class extends value [object Module]" when node-pg-migrate loads pg).
const resolve = { conditions: ['source', 'node', 'default'] };

export default defineConfig({
  resolve,
  ssr: { resolve: { conditions: resolve.conditions, externalConditions: ['source'] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['{common,producer,consumer,rabbitmq,scripts}/test/unit/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['{common,producer,consumer,rabbitmq,scripts}/test/integration/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Whole-system runs (launcher, chaos, containers): one file at a time, after the rest.
        extends: true,
        test: {
          name: 'system',
          include: ['scripts/test/system/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
