import { describe, expect, it } from 'vitest';
import { counterSum, createCounterAccumulator, parseCounters } from '../../../src/chaos/counters.js';

const text = `# HELP task_reports_total Status reports by outcome
# TYPE task_reports_total counter
task_reports_total{outcome="applied"} 10
task_reports_total{outcome="stale"} 2
process_cpu_seconds 1.5
http_request_duration_seconds_bucket{le="0.1"} 4
consumer_tasks_processed_total{queue="tasks.high"} 7
`;

describe('counters', () => {
  it('parses only *_total series, with their labels', () => {
    const parsed = parseCounters(text);
    expect(parsed.get('task_reports_total{outcome="applied"}')).toBe(10);
    expect(parsed.get('consumer_tasks_processed_total{queue="tasks.high"}')).toBe(7);
    expect(parsed.has('process_cpu_seconds')).toBe(false);
    expect(parsed.size).toBe(3);
  });

  it('adds increases per process and counts a new process from zero', () => {
    const acc = createCounterAccumulator();
    acc.add('producer:1', new Map([['x_total', 5]]));
    acc.add('producer:1', new Map([['x_total', 8]]));
    acc.add('producer:2', new Map([['x_total', 12]]));
    acc.add('producer:2', new Map([['x_total', 3]]));
    expect(acc.totals().get('x_total')).toBe(8 + 12 + 3);
  });

  it('sums a counter over matching label sets', () => {
    const totals = new Map([
      ['r_total{outcome="stale",status="success"}', 2],
      ['r_total{outcome="stale",status="error"}', 1],
      ['r_total{outcome="applied",status="success"}', 9],
      ['r_total_other', 100],
    ]);
    expect(counterSum(totals, 'r_total', 'outcome="stale"')).toBe(3);
    expect(counterSum(totals, 'r_total')).toBe(12);
  });
});
