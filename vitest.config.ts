import { defineConfig } from 'vitest/config';

// Workspace packages export their TypeScript sources under the `source` condition,
// so tests run against src/ without a build step. No explicit 'import': Vite adds import/require
// itself per call site, and forcing 'import' makes pg's require('pg-pool') get the ESM build
// ("Class extends value [object Module]" when node-pg-migrate loads pg).
const resolve = { conditions: ['source', 'node', 'default'] };

// The tiers, by folder in every workspace (`<workspace>/test/<tier>/`), so a new test file joins
// its tier by where it is written. `npm run test:fast` is unit + integration; `npm test` runs all four.
const WORKSPACES = '{common,rabbitmq,producer,consumer,testkit,scripts}';
const tier = (name: string) => `${WORKSPACES}/test/${name}/**/*.test.ts`;

export default defineConfig({
  resolve,
  ssr: { resolve: { conditions: resolve.conditions, externalConditions: ['source'] } },
  test: {
    // Four files at a time (the default on two cores is one, and maxWorkers is not per project):
    // integration files mostly wait on the servers; the slow tiers opt out with fileParallelism.
    maxWorkers: 4,
    // The services tests start log into one folder for the run, removed at its end.
    globalSetup: ['testkit/src/service-logs-setup.ts'],
    projects: [
      {
        // Pure modules, fakes at most: milliseconds, no server.
        extends: true,
        // The 30 s bound is for CPU-bound property tests on a shared two-core machine, not a budget.
        test: { name: 'unit', include: [tier('unit')], testTimeout: 30_000 },
      },
      {
        // The machine's shared PostgreSQL and RabbitMQ (a database and a vhost per file), HTTP
        // through listening servers; nothing restarted, nothing held: seconds per file.
        extends: true,
        test: {
          name: 'integration',
          include: [tier('integration')],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Private servers stopped and restarted, outages and partitions held, processes killed at
        // crash points, million-row plan fixtures, the 2,000-task runs: minutes, after the fast tiers.
        extends: true,
        test: {
          name: 'resilience',
          include: [tier('resilience')],
          // One file at a time: restarts, held outages and kills are timing-sensitive, and two private
          // RabbitMQ nodes starting at once on two cores is how they would turn flaky.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        // The whole system (run.sh, chaos, fuzz, containers, the bench smoke): one file at a time, last.
        extends: true,
        test: {
          name: 'system',
          include: [tier('system')],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
