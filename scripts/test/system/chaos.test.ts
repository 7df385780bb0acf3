// The short chaos run of issue 7: 2,000 tasks on private PostgreSQL and RabbitMQ through a SIGKILL
// of the producer and of a consumer, a SIGTERM of the other consumer, a broker restart, a database
// restart, a 10 s partition and a redrive with stale copies queued. Nothing may be lost or flip.
import { describe, expect, it } from 'vitest';
import { CLUSTER_FAULTS } from '../../src/chaos/plan.js';
import { DEFAULT_CHAOS_OPTIONS, runChaos } from '../../src/chaos/run.js';
import { formatTable } from '../../src/chaos/verdict.js';

describe('chaos run (2,000 tasks, every fault)', () => {
  it('loses no task and flips no result', async () => {
    const lines: string[] = [];
    const report = await runChaos(
      { ...DEFAULT_CHAOS_OPTIONS, tasks: 2_000, ratePerSecond: 40, seed: 7, quietTimeoutMs: 150_000 },
      (line) => lines.push(line),
    );
    const { verdict } = report;
    const table = formatTable(verdict.rows);
    const context = [
      table,
      `lost: ${verdict.lostTaskIds.join(' ') || 'none'}`,
      `flipped: ${verdict.flippedTaskIds.join(' ') || 'none'}`,
      `unexpected: ${verdict.unexpectedTaskIds.join(' ') || 'none'}`,
      ...report.crashes.map((c) => `crash of ${c.service} (exit ${c.exitCode}):\n${c.logTail}`),
      `progress:\n${lines.join('\n')}`,
    ].join('\n');
    console.log(table);
    // A crash is restarted (as compose would) and still fails the run: the known one (postgres.js
    // nextWrite on a PostgreSQL restart) is patched, see RELIABILITY.md.
    expect(
      report.crashes.map((c) => `${c.service} (exit ${c.exitCode})`),
      context,
    ).toEqual([]);
    expect(verdict.lostTaskIds, context).toEqual([]);
    expect(verdict.flippedTaskIds, context).toEqual([]);
    expect(verdict.unexpectedTaskIds, context).toEqual([]);
    expect(verdict.redriveFailures, context).toEqual([]);
    const faultRows = verdict.rows.filter(
      (r) => r.check.startsWith('fault ') || r.check.includes('graceful'),
    );
    expect(faultRows.length, context).toBeGreaterThanOrEqual(DEFAULT_CHAOS_OPTIONS.faults.length);
    expect(
      faultRows.filter((r) => !r.ok),
      context,
    ).toEqual([]);
    expect(report.faults.map((f) => f.kind).sort()).toEqual([...DEFAULT_CHAOS_OPTIONS.faults].sort());
    expect(report.figures.accepted, context).toBe(2_000);
    expect(verdict.rows.find((r) => r.check === 'queues drained')?.ok, context).toBe(true);
  });
});

describe('chaos run on a 3-node RabbitMQ cluster (1,500 tasks, two producers, about 2 min)', () => {
  it('loses nothing through the loss of the leading node, then another node, then a producer', async () => {
    const lines: string[] = [];
    const report = await runChaos(
      {
        ...DEFAULT_CHAOS_OPTIONS,
        cluster: true,
        faults: CLUSTER_FAULTS,
        tasks: 1_500,
        ratePerSecond: 40,
        nodeDownMs: 5_000,
        seed: 7,
        quietTimeoutMs: 150_000,
      },
      (line) => lines.push(line),
    );
    const { verdict } = report;
    const table = formatTable(verdict.rows);
    const context = [table, `progress:\n${lines.join('\n')}`].join('\n');
    console.log(table);
    console.log(report.figures.nodeDownGaps);
    expect(report.crashes, context).toEqual([]);
    expect(verdict.lostTaskIds, context).toEqual([]);
    expect(verdict.flippedTaskIds, context).toEqual([]);
    expect(verdict.unexpectedTaskIds, context).toEqual([]);
    expect(report.faults.map((f) => f.kind).sort(), context).toEqual([...CLUSTER_FAULTS].sort());
    expect(
      report.faults.filter((f) => !f.happened),
      context,
    ).toEqual([]);
    expect(report.figures.reports.conflict, context).toBe(0);
    expect(verdict.ok, context).toBe(true);
  });
});
