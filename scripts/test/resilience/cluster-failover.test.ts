// SLOW (resilience tier, 66–136 s here depending on the load): the producer, a second producer and
// two consumers on a private 3-node RabbitMQ cluster, given every node in AMQP_URL; the node holding
// most of their connections is SIGKILLed while tasks are created, and started again. Tasks keep
// being dispatched and finished while it is down; every accepted task ends terminal, none flips, no
// second result.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CHAOS_OPTIONS, runChaos } from '../../src/chaos/run.js';
import { formatTable } from '../../src/chaos/verdict.js';

describe('failover on a 3-node RabbitMQ cluster (slow)', () => {
  it('keeps dispatching and processing through the loss of the node the services are connected to', async () => {
    const lines: string[] = [];
    const report = await runChaos(
      {
        ...DEFAULT_CHAOS_OPTIONS,
        cluster: true,
        faults: ['kill-rabbitmq-node'],
        tasks: 1_200,
        ratePerSecond: 40,
        nodeDownMs: 5_000,
        seed: 3,
        quietTimeoutMs: 120_000,
      },
      (line) => lines.push(line),
    );
    const { verdict, figures } = report;
    const context = [formatTable(verdict.rows), `progress:\n${lines.join('\n')}`].join('\n');
    expect(verdict.ok, context).toBe(true);
    expect(verdict.lostTaskIds, context).toEqual([]);
    expect(verdict.flippedTaskIds, context).toEqual([]);
    expect(report.crashes, context).toEqual([]);
    // The killed node held connections of the services, and came back (a new pid, started again).
    const fault = report.faults[0];
    expect(fault?.happened, context).toBe(true);
    expect(fault?.evidence, context).toMatch(/held [1-9]\d*\/\d+ connections/);
    // Work went on while it was down: the other nodes took over the connections and the queues.
    const [down] = figures.nodeDownGaps;
    expect(down?.dispatchedWhileDown, context).toBeGreaterThan(0);
    expect(down?.finishedWhileDown, context).toBeGreaterThan(0);
    // No task got a second, different result: conflicts are what a second result would be answered.
    expect(figures.reports.conflict, context).toBe(0);
    expect(figures.accepted).toBe(1_200);
  }, 420_000);
});
