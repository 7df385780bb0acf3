// BENCHMARKS.md and its plots from one run's results: pure, so the smoke test can check the output.
// Everything above NOTES_MARKER is regenerated on every run; what a person wrote below it (profiles,
// findings, before/after) is carried over from the existing file.
import type { ProcessUsage } from './resources.js';
import type { BenchResults, DrainRow, HttpStats, Rate } from './results.js';
import { formatBytes, formatNumber, formatRatio, ratio } from './stats.js';
import { type BarChart, renderBarChart } from './svg.js';

export const NOTES_MARKER =
  '<!-- Hand-written notes below this line are kept when `npm run bench` rewrites the file. -->';
export const PLOT_DIR = 'docs/bench';

export const TARGETS = {
  dispatchVsNaive: 50,
  apiVsNaive: 1,
  apiAim: 2,
  p99AimMs: 50,
} as const;

export interface Report {
  markdown: string;
  /** File name (under PLOT_DIR) → SVG text. */
  plots: Record<string, string>;
}

const rateCell = (rate: Rate | undefined, unit = 'tasks/s') =>
  rate ? `${formatNumber(rate.perSecond)} ${unit}` : 'failed';

function verdict(value: number | undefined, target: number): string {
  if (value === undefined) return '–';
  return value >= target ? '✅' : '❌';
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function plot(name: string, alt: string): string {
  return `![${alt}](${PLOT_DIR}/${name})`;
}

function summary(r: BenchResults): string {
  const rows: string[][] = [];
  for (const d of r.dispatch ?? []) {
    const x = ratio(d.ours?.perSecond ?? Number.NaN, d.naive?.perSecond ?? 0);
    rows.push([
      `Dispatch, ${formatNumber(d.backlog)} waiting`,
      rateCell(d.ours),
      `naive loop ${rateCell(d.naive)}`,
      formatRatio(x),
      `≥ ${TARGETS.dispatchVsNaive}× ${verdict(x, TARGETS.dispatchVsNaive)}`,
    ]);
  }
  const ours = r.drain?.find((d) => d.system === 'task-pipeline');
  for (const peer of r.drain?.filter((d) => d.system !== 'task-pipeline') ?? []) {
    const x = ours ? ratio(ours.rate.perSecond, peer.rate.perSecond) : undefined;
    rows.push([
      `Drain ${formatNumber(peer.tasks)} end to end`,
      rateCell(ours?.rate),
      `${peer.system} ${rateCell(peer.rate, 'jobs/s')}`,
      formatRatio(x),
      `reported (aim > 1×) ${verdict(x, 1)}`,
    ]);
  }
  for (const a of r.api ?? []) {
    const x = ratio(a.ours?.reqPerSec ?? Number.NaN, a.naive?.reqPerSec ?? 0);
    rows.push([
      `API ${a.route}`,
      a.ours ? `${formatNumber(a.ours.reqPerSec)} req/s` : 'failed',
      `naive route ${a.naive ? `${formatNumber(a.naive.reqPerSec)} req/s` : 'failed'}`,
      formatRatio(x),
      `≥ ${TARGETS.apiVsNaive}× ${verdict(x, TARGETS.apiVsNaive)} (aim ${TARGETS.apiAim}× ${verdict(x, TARGETS.apiAim)})`,
    ]);
  }
  if (r.latency) {
    const l = r.latency;
    rows.push([
      `Create → success p99 at ${formatNumber(l.targetPerSec)}/s`,
      `${formatNumber(l.p99Ms)} ms`,
      '–',
      '–',
      `aim ≤ ${TARGETS.p99AimMs} ms ${l.p99Ms <= TARGETS.p99AimMs ? '✅' : '❌'}`,
    ]);
  }
  if (rows.length === 0) return '';
  return `## Summary\n\n${table(['Measure', 'task-pipeline', 'Baseline', 'Ratio', 'Target'], rows)}\n`;
}

function machine(r: BenchResults): string {
  const m = r.machine;
  return `## Machine and method

| | |
| --- | --- |
| Command | \`${r.command}\` (profile \`${r.profile}\`, ${formatNumber(r.durationS / 60)} min) |
| Date | ${r.startedAt} |
| CPU | ${m.nproc} cores (\`nproc\`), ${m.cpuModel} |
| Memory | ${m.memoryGiB} GiB |
| Load average at start | ${m.loadAverage.join(', ')} (the machine is shared: other work runs beside the benchmark) |
| OS | ${m.os} |
| Node.js | ${m.node} |
| PostgreSQL | ${m.postgres} (the shared server, default settings, \`synchronous_commit\` on) |
| RabbitMQ | ${m.rabbitmq} (the shared node; every queue is a quorum queue) |

Every part runs in its own database and RabbitMQ vhost, created for it and dropped after. Our
services run from source (\`node --conditions=source --import tsx\`), each in its own process, with
\`LOG_LEVEL=${r.serviceLogLevel}\` (the naive baselines log nothing either); the baselines run the same
way. Absolute numbers swing by ±25% between runs here: compare the ratios, which are measured in the
same run on the same machine.
`;
}

function dispatchSection(r: BenchResults): string {
  if (!r.dispatch) return '';
  const rows = r.dispatch.map((d) => [
    formatNumber(d.backlog),
    rateCell(d.naive),
    rateCell(d.ours),
    formatRatio(ratio(d.ours?.perSecond ?? Number.NaN, d.naive?.perSecond ?? 0)),
    d.ours ? `${formatNumber(d.ours.count)} in ${formatNumber(d.ours.elapsedMs / 1000)} s` : '–',
    String((d.ours?.duplicates ?? 0) + (d.naive?.duplicates ?? 0)),
  ]);
  return `## 1. Dispatcher vs the naive loop

The naive loop is seed 002's: one task at a time, \`SELECT id, text FROM tasks WHERE status = 'waiting'
ORDER BY random() LIMIT 1\` (with an index on status), a confirmed publish, \`UPDATE … SET status =
'sent' WHERE id = $1\`. Ours is the producer's dispatcher with its defaults (\`DISPATCH_MAX_IN_FLIGHT\`
raised so the non-reporting sink cannot stop it). Both publish to the same quorum queue, drained by
the same auto-ack sink; each rate runs from the first message at the sink over a fixed window, or to
the last message if the backlog empties first.

${table(['Waiting rows', 'Naive loop', 'Dispatcher', 'Ratio', 'Dispatcher counted', 'Duplicates'], rows)}

${plot('dispatch.svg', 'Dispatch rate: dispatcher vs naive loop')}
`;
}

function drainSection(r: BenchResults): string {
  if (!r.drain) return '';
  const ours = r.drain.find((d) => d.system === 'task-pipeline');
  const rows = r.drain.map((d) => [
    d.system,
    `${formatNumber(d.rate.perSecond)}/s`,
    `${formatNumber(d.rate.elapsedMs / 1000)} s${d.completed ? '' : ' (timed out)'}`,
    d.system === 'task-pipeline' || !ours ? '–' : formatRatio(ratio(ours.rate.perSecond, d.rate.perSecond)),
    d.settings,
  ]);
  return `## 2. End-to-end drain

${formatNumber(r.drain[0]?.tasks ?? 0)} tasks already waiting; ours: producer + 2 consumers,
\`PROCESSING_TIME_MS=0\`, \`FAILURE_RATE=0\`, until every task is \`success\` (dispatch, work, result
message, reporter, batch status update). The peers drain as many no-op jobs from the same database
server, with their documented throughput settings. Each clock starts when every process of the
system is ready and stops at the last completion (task-pipeline: \`max(finished_at)\`; pg-boss:
\`max(completed_on)\`; graphile-worker deletes finished jobs, so: the 100 ms poll that finds none left).

${table(['System', 'Rate', 'Time', 'task-pipeline ÷ it', 'Settings'], rows)}

${plot('drain.svg', 'End-to-end drain rate')}
`;
}

function httpCells(s: HttpStats | undefined): string[] {
  if (!s) return ['failed', '–', '–', '–'];
  const bad = s.errors + s.non2xx;
  return [`${formatNumber(s.reqPerSec)}`, `${s.p50Ms}`, `${s.p99Ms}`, bad > 0 ? `${bad}` : '0'];
}

function apiSection(r: BenchResults): string {
  if (!r.api) return '';
  const rows = r.api.flatMap((a) => {
    const vsNaive = (s: HttpStats | undefined) =>
      formatRatio(ratio(s?.reqPerSec ?? Number.NaN, a.naive?.reqPerSec ?? 0));
    return [
      [a.route, 'task-pipeline', ...httpCells(a.ours), vsNaive(a.ours)],
      [a.route, 'naive route', ...httpCells(a.naive), '1×'],
      [a.route, 'coalescing prototype', ...httpCells(a.prototype), vsNaive(a.prototype)],
    ];
  });
  return `## 3. API

autocannon, 64 connections, closed loop. create-task posts a short text; update-task-status reports
\`success\` for a distinct \`sent\` task per request (a real transition, with the Bearer token). The
naive route is a bare Fastify app doing one INSERT / UPDATE per request on the same table, with no
auth and no request log. The coalescing prototype is the same bare app with the requests that arrive
together gathered into one multi-row INSERT / UPDATE (one round trip and one commit for many
requests): not a baseline but the proposed fix for the producer, measured beside it. The producer's
dispatcher is off. autocannon runs on the same 2 cores as the server it loads.

${table(['Route', 'Server', 'req/s', 'p50 ms', 'p99 ms', 'errors + non-2xx', '÷ naive'], rows)}

${plot('api.svg', 'API throughput')}
`;
}

function latencySection(r: BenchResults): string {
  const l = r.latency;
  if (!l) return '';
  return `## 4. Latency

Creates at a fixed ${formatNumber(l.targetPerSec)}/s (open loop), producer + 2 consumers, 0 ms work, after
${formatNumber(l.warmUpMs / 1000)} s of warm-up at the same rate that is not counted (fresh processes are slow for
their first seconds: JIT, pools, channels). Create → success is \`finished_at - created_at\` of each
task, both stamped by PostgreSQL; the create request's own latency is the client's, including time
queued when the server takes in less than is offered.

${table(
  [
    'Created',
    'Taken in (created ÷ time to last answer)',
    'Succeeded',
    'p50',
    'p95',
    'p99',
    'max',
    'create request p50 / p99',
  ],
  [
    [
      formatNumber(l.created),
      `${formatNumber(l.achievedPerSec)}/s`,
      formatNumber(l.succeeded),
      `${formatNumber(l.p50Ms)} ms`,
      `${formatNumber(l.p95Ms)} ms`,
      `${formatNumber(l.p99Ms)} ms`,
      `${formatNumber(l.maxMs)} ms`,
      `${formatNumber(l.createP50Ms)} / ${formatNumber(l.createP99Ms)} ms`,
    ],
  ],
)}

${stagesTable(l)}

${plot('latency.svg', 'Create to success latency')}
`;
}

function stagesTable(l: NonNullable<BenchResults['latency']>): string {
  if (!l.stages) return '';
  const row = (stage: string, q: { p50Ms: number; p99Ms: number }) => [
    stage,
    `${formatNumber(q.p50Ms)} ms`,
    `${formatNumber(q.p99Ms)} ms`,
  ];
  return `Where the time goes (from the tasks' \`sent_at\`, stamped when the dispatcher records the confirm):

${table(
  ['Stage', 'p50', 'p99'],
  [
    row('created → sent (claim, publish, confirm, record)', l.stages.createdToSent),
    row('sent → success (work queue, worker, result queue, reporter, report)', l.stages.sentToSuccess),
  ],
)}`;
}

function usageRows(label: string, usage: readonly ProcessUsage[]): string[][] {
  return usage.map((u) => [
    label,
    u.name,
    u.peakRssBytes === undefined ? '–' : formatBytes(u.peakRssBytes),
    `${formatNumber(u.avgCpuPercent)}%`,
    `${formatNumber(u.peakCpuPercent)}%`,
  ]);
}

function resourcesSection(r: BenchResults): string {
  const rows = [
    ...(r.drain ?? []).flatMap((d: DrainRow) => usageRows(`drain: ${d.system}`, d.resources)),
    ...(r.latency ? usageRows('latency run', r.latency.resources) : []),
  ];
  if (rows.length === 0) return '';
  return `## 5. Resources

Per process during measures 2 and 4: peak RSS (the kernel's high-water mark, VmHWM) and CPU in % of
one core (average over the run, and the highest 0.5 s sample). The server rows add up every
PostgreSQL backend or the RabbitMQ node, including whatever else the shared machine ran meanwhile.

${table(['Run', 'Process', 'Peak RSS', 'CPU avg', 'CPU peak'], rows)}
`;
}

function scaleSection(r: BenchResults): string {
  if (!r.scale) return '';
  const rows = r.scale.map((s) => [formatNumber(s.backlog), rateCell(s.dispatch), rateCell(s.drain)]);
  const explains = r.scale
    .filter((s) => s.explain)
    .map(
      (s) =>
        `Claim of one batch (500, random order) with ${formatNumber(s.backlog)} waiting rows:\n\n\`\`\`\n${s.explain}\n\`\`\``,
    );
  return `## 6. Scale

Dispatch rate into the sink and end-to-end drain rate (producer + 2 consumers), each over a fixed
window or until the backlog is empty, at each backlog size (1M with \`--full\`).

${table(['Waiting rows', 'Dispatch', 'Drain'], rows)}

${explains.join('\n\n')}
`;
}

function failuresSection(r: BenchResults): string {
  if (r.failures.length === 0) return '';
  const items = r.failures.map(
    (f) => `- **${f.measure}**: \n\n  \`\`\`\n  ${f.error.split('\n').slice(0, 12).join('\n  ')}\n  \`\`\``,
  );
  return `## Parts that failed in this run\n\n${items.join('\n')}\n`;
}

function charts(r: BenchResults): Record<string, BarChart> {
  const charts: Record<string, BarChart> = {};
  if (r.dispatch) {
    charts['dispatch.svg'] = {
      title: 'Dispatch rate: dispatcher vs naive loop (seed 002)',
      subtitle: 'tasks/s published and confirmed into one quorum queue',
      unit: 'tasks/s',
      log: true,
      groups: r.dispatch.map((d) => ({
        label: `${formatNumber(d.backlog)} waiting`,
        note: `${formatRatio(ratio(d.ours?.perSecond ?? Number.NaN, d.naive?.perSecond ?? 0))} naive`,
        bars: [
          { label: 'dispatcher', value: d.ours?.perSecond, ours: true },
          { label: 'naive loop', value: d.naive?.perSecond },
        ],
      })),
    };
  }
  if (r.drain) {
    charts['drain.svg'] = {
      title: `End-to-end drain of ${formatNumber(r.drain[0]?.tasks ?? 0)} waiting tasks`,
      subtitle: 'tasks (jobs) completed per second, same database server, same run',
      unit: '/s',
      groups: [
        {
          label: 'drain',
          bars: r.drain.map((d) => ({
            label: d.system,
            value: d.rate.perSecond,
            ours: d.system === 'task-pipeline',
          })),
        },
      ],
    };
  }
  if (r.api) {
    charts['api.svg'] = {
      title: 'API throughput (autocannon, 64 connections)',
      subtitle: 'requests per second',
      unit: 'req/s',
      groups: r.api.map((a) => ({
        label: a.route,
        note: `${formatRatio(ratio(a.ours?.reqPerSec ?? Number.NaN, a.naive?.reqPerSec ?? 0))} naive`,
        bars: [
          { label: 'task-pipeline', value: a.ours?.reqPerSec, ours: true },
          { label: 'naive route', value: a.naive?.reqPerSec },
          { label: 'coalescing prototype', value: a.prototype?.reqPerSec },
        ],
      })),
    };
  }
  if (r.latency) {
    const l = r.latency;
    charts['latency.svg'] = {
      title: `Create → success latency, ${formatNumber(l.targetPerSec)} creates/s offered`,
      subtitle: 'milliseconds, PostgreSQL timestamps; 0 ms of simulated work',
      unit: 'ms',
      groups: [
        {
          label: 'create → success',
          bars: [
            { label: 'p50', value: l.p50Ms, ours: true },
            { label: 'p95', value: l.p95Ms, ours: true },
            { label: 'p99', value: l.p99Ms, ours: true },
            { label: `aim (p99)`, value: TARGETS.p99AimMs },
          ],
        },
        {
          label: 'create request (client side)',
          bars: [
            { label: 'p50', value: l.createP50Ms, ours: true },
            { label: 'p99', value: l.createP99Ms, ours: true },
          ],
        },
      ],
    };
  }
  return charts;
}

export function renderReport(results: BenchResults, existing: string | undefined): Report {
  const notes = existing?.includes(NOTES_MARKER)
    ? existing.slice(existing.indexOf(NOTES_MARKER) + NOTES_MARKER.length)
    : '\n';
  const sections = [
    `# Benchmarks

Generated by \`${results.command}\`. The pipeline and its baselines are measured in the same run on
the same machine; absolute numbers here swing by ±25% between runs, so read the **ratios**.
`,
    summary(results),
    machine(results),
    dispatchSection(results),
    drainSection(results),
    apiSection(results),
    latencySection(results),
    resourcesSection(results),
    scaleSection(results),
    failuresSection(results),
  ].filter(Boolean);
  const plots = Object.fromEntries(
    Object.entries(charts(results)).map(([name, chart]) => [name, renderBarChart(chart)]),
  );
  return { markdown: `${sections.join('\n')}\n${NOTES_MARKER}${notes}`, plots };
}
