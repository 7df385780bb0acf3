// The short fuzz: 1,000 generated requests on every route (with a real token and real task ids),
// 1,000 raw-byte requests over every listening port of both services, and malformed messages on every
// queue → no 5xx, no unanswered request, no service exit, nothing changed by a rejected request,
// every bad message parked or reported, both services alive.
import { describe, expect, it } from 'vitest';
import { runFuzz } from '../../src/fuzz/run.js';

describe('fuzz (1,000 requests, 1,000 raw requests on every port, malformed messages on every queue)', () => {
  it('answers no 5xx, crashes nothing, changes nothing when it rejects, parks bad messages', async () => {
    const lines: string[] = [];
    const report = await runFuzz(
      { requests: 1_000, raw: 1_000, seed: 20_240_611, amqp: true, logLevel: 'warn' },
      (l) => lines.push(l),
    );
    const { http, raw, amqp } = report;
    const failures = [...http.findings, ...raw.findings].filter((f) => f.severe);
    const context = [
      `by status ${JSON.stringify(http.byStatus)}, raw ${JSON.stringify(raw.byService)}`,
      `service exits ${JSON.stringify(report.exits)}`,
      ...failures
        .slice(0, 20)
        .map((f) => `#${f.index} ${f.problem} [${f.status ?? '-'}] ${f.request} ${f.body ?? ''}`),
      `amqp: ${JSON.stringify({ ...amqp, parked: amqp?.parked.length })}`,
      ...lines,
    ].join('\n');
    const deviations = [...http.findings, ...raw.findings].filter((f) => !f.severe);
    console.log(
      `fuzz: ${http.requests} requests ${JSON.stringify(http.byStatus)} in ${http.elapsedMs} ms; ` +
        `${raw.requests} raw ${JSON.stringify(raw.byService)} in ${raw.elapsedMs} ms; ${deviations.length} format deviations`,
    );

    expect(http.requests, context).toBeGreaterThanOrEqual(950);
    expect(http.serverErrors, context).toBe(0);
    expect(failures, context).toEqual([]);
    expect(raw.requests, context).toBeGreaterThanOrEqual(1_000);
    expect(report.exits, context).toEqual([]);
    expect(amqp, context).toBeDefined();
    expect(amqp?.servicesAlive, context).toBe(true);
    expect(amqp?.drained, context).toBe(true);
    expect(amqp?.changedTasks, context).toEqual([]);
    expect(amqp?.producerServerErrors, context).toBe(0);
    expect(amqp?.parkedTwice, context).toEqual([]);
    // Unparseable messages can only be parked: at least those must be there.
    expect(amqp?.parked.filter((p) => p.label.endsWith('/not-json')).length, context).toBeGreaterThan(0);
  });
});
