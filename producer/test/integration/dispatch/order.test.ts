// Claim order: high priority first, then random within a priority (DISPATCH_ORDER=random), or oldest
// first (fifo). Random is measured as the rank correlation between creation and publish order.
import { PRIORITIES, type Priority, WORK_QUEUES } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import {
  drainQueues,
  insertTasks,
  logger,
  resetState,
  startDispatcher,
  statusCounts,
  type TestDispatcher,
  useServices,
} from '../../support/dispatch.js';

const running: TestDispatcher[] = [];

const services = useServices('dispatch_order');
beforeEach(async () => {
  await resetState(services);
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.close()));
});

/** Spearman's ρ between two orderings of the same ids (no ties: ranks are positions). */
function spearman(a: readonly string[], b: readonly string[]): number {
  const rankInB = new Map(b.map((id, i) => [id, i]));
  const n = a.length;
  let sumSquares = 0;
  a.forEach((id, i) => {
    const d = i - (rankInB.get(id) ?? Number.NaN);
    sumSquares += d * d;
  });
  return 1 - (6 * sumSquares) / (n * (n * n - 1));
}

async function publishOrderOf(
  count: number,
  order: 'random' | 'fifo',
): Promise<{ created: string[]; published: string[] }> {
  // Created while no dispatcher runs (DISPATCHER_ENABLED=false), dispatched afterwards.
  const tasks = await insertTasks(services.sql, count);
  running.push(await startDispatcher(services, { config: { order } }));
  await eventually('all sent', async () => (await statusCounts(services.sql)).sent === count, {
    timeoutMs: 60_000,
  });
  // One queue, one publishing channel: the queue holds the messages in publish order.
  const messages = await drainQueues(services.vhost.url, [WORK_QUEUES.medium]);
  return { created: tasks.map((t) => t.id), published: messages.map((m) => m.messageId) };
}

describe('claim order', () => {
  test('random: publish order is uncorrelated with creation order (|ρ| < 0.2 over 1,000 tasks)', async () => {
    const { created, published } = await publishOrderOf(1_000, 'random');
    expect(published).toHaveLength(1_000);
    expect(new Set(published)).toEqual(new Set(created));
    const rho = spearman(created, published);
    logger.info({ rho }, 'random order: Spearman rho between creation and publish order');
    expect(Math.abs(rho), `rho = ${rho}`).toBeLessThan(0.2);
  });

  test('fifo: the same measurement sees oldest first (ρ ≈ 1), so it can tell orders apart', async () => {
    const { created, published } = await publishOrderOf(1_000, 'fifo');
    expect(spearman(created, published)).toBeGreaterThan(0.99);
  });

  test('priority: in a mixed backlog every high task is claimed before any medium, every medium before any low', async () => {
    await insertTasks(services.sql, 900, (i) => PRIORITIES[(i * 7) % 3] ?? 'low');
    const claimOrder: Priority[] = [];
    running.push(
      await startDispatcher(services, {
        config: { batchSize: 50 },
        hooks: { afterClaim: (tasks) => void claimOrder.push(...tasks.map((t) => t.priority)) },
      }),
    );
    await eventually('all sent', async () => (await statusCounts(services.sql)).sent === 900, {
      timeoutMs: 60_000,
    });
    expect(claimOrder).toHaveLength(900);
    const ranks = claimOrder.map((p) => PRIORITIES.indexOf(p));
    expect(ranks).toEqual([...ranks].sort((x, y) => x - y));
    expect(claimOrder.filter((p) => p === 'high')).toHaveLength(300);
  });
});
