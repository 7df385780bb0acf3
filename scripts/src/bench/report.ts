// BENCHMARKS.md and its plots from one run's results: pure, so the smoke test can check the output.
// Everything above NOTES_MARKER is regenerated on every run; what a person wrote below it (profiles,
// findings, before/after) is carried over from the existing file.
import { accountOf, type CpuAccount } from './cpu.js';
import { OUR_BEST_SETTINGS, settingsText } from './plan.js';
import { type ProcessUsage, SERVER_LABELS } from './resources.js';
import type {
  BenchResults,
  ClusterResult,
  DrainRow,
  HttpStats,
  Measured,
  Rate,
  ScaleRow,
} from './results.js';
import { formatBytes, formatNumber, formatRatio, ratio } from './stats.js';
import {
  type BarChart,
  renderBarChart,
  renderStackedChart,
  type StackedBar,
  type StackedChart,
} from './svg.js';
import { atLeast, atMost, flatness, TARGETS } from './targets.js';

export const NOTES_MARKER =
  '<!-- Hand-written notes below this line are kept when `npm run bench` rewrites the file. -->';
export const PLOT_DIR = 'docs/bench';

export interface Report {
  markdown: string;
  /** File name (under PLOT_DIR) → SVG text. */
  plots: Record<string, string>;
}

const rateCell = (rate: Rate | undefined, unit = 'tasks/s') =>
  rate ? `${formatNumber(rate.perSecond)} ${unit}` : 'failed';

const MIB = 1024 * 1024;

const microsCell = (account: CpuAccount | undefined) =>
  account ? `${formatNumber(account.totalMicrosPerItem)} µs` : '–';

const drainOf = (r: BenchResults, system: DrainRow['system']) => r.drain?.find((d) => d.system === system);
/** A peer as the report names it: the library and its version. */
const systemName = (d: DrainRow) => (d.version ? `${d.system} ${d.version}` : d.system);

function peakRssMiB(d: DrainRow | undefined, match: (name: string) => boolean): number | undefined {
  const peaks = (d?.resources ?? [])
    .filter((u) => u.peakRssBytes !== undefined && match(u.name))
    .map((u) => (u.peakRssBytes ?? 0) / MIB);
  return peaks.length > 0 ? Math.max(...peaks) : undefined;
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
  const raw = r.rawBroker;
  for (const d of r.dispatch ?? []) {
    const x = ratio(d.ours?.perSecond ?? Number.NaN, d.naive?.perSecond ?? 0);
    rows.push([
      `Dispatch, ${formatNumber(d.backlog)} waiting`,
      rateCell(d.ours),
      `naive loop ${rateCell(d.naive)}`,
      formatRatio(x),
      `≥ ${TARGETS.dispatchVsNaive}× ${atLeast(x, TARGETS.dispatchVsNaive)}`,
    ]);
  }
  for (const d of r.dispatch ?? []) {
    if (!raw) break;
    const x = ratio(d.ours?.perSecond ?? Number.NaN, raw.rate.perSecond);
    rows.push([
      `Dispatch, ${formatNumber(d.backlog)} waiting`,
      rateCell(d.ours),
      `raw confirmed publish ${rateCell(raw.rate, 'msg/s')}`,
      formatRatio(x),
      `≥ ${TARGETS.dispatchVsRaw}× ${atLeast(x, TARGETS.dispatchVsRaw)}`,
    ]);
  }
  const ours = drainOf(r, 'task-pipeline');
  for (const peer of r.drain?.filter((d) => d.system !== 'task-pipeline') ?? []) {
    const x = ours ? ratio(ours.rate.perSecond, peer.rate.perSecond) : undefined;
    const target =
      peer.system === 'pg-boss'
        ? `≥ ${TARGETS.drainVsPgBoss}× ${atLeast(x, TARGETS.drainVsPgBoss)} (aim > 1× ${atLeast(x, TARGETS.drainAim)})`
        : `aim > 1× ${atLeast(x, TARGETS.drainAim)}`;
    rows.push([
      `Drain ${formatNumber(peer.tasks)} end to end`,
      rateCell(ours?.rate),
      `${systemName(peer)} ${rateCell(peer.rate, 'jobs/s')}`,
      formatRatio(x),
      target,
    ]);
  }
  if (r.drain) {
    const mine = accountOf(ours);
    const peers = r.drain.filter((d) => d.system !== 'task-pipeline');
    const pgBoss = accountOf(drainOf(r, 'pg-boss'));
    rows.push([
      'CPU per task in the drain, all processes',
      microsCell(mine),
      peers.map((d) => `${d.system} ${microsCell(accountOf(d))}`).join(', ') || '–',
      pgBoss && mine ? formatRatio(ratio(mine.totalMicrosPerItem, pgBoss.totalMicrosPerItem)) : '–',
      `≤ ${TARGETS.cpuMicrosPerTask} µs ${atMost(mine?.totalMicrosPerItem, TARGETS.cpuMicrosPerTask)}`,
    ]);
    const producer = peakRssMiB(ours, (n) => n === 'producer');
    const consumer = peakRssMiB(ours, (n) => n.startsWith('consumer'));
    rows.push(
      [
        'Peak RSS in the drain, producer',
        producer === undefined ? '–' : `${formatNumber(producer)} MiB`,
        '–',
        '–',
        `≤ ${TARGETS.producerRssMiB} MiB ${atMost(producer, TARGETS.producerRssMiB)}`,
      ],
      [
        'Peak RSS in the drain, a consumer (the larger)',
        consumer === undefined ? '–' : `${formatNumber(consumer)} MiB`,
        '–',
        '–',
        `≤ ${TARGETS.consumerRssMiB} MiB ${atMost(consumer, TARGETS.consumerRssMiB)}`,
      ],
    );
  }
  for (const a of r.api ?? []) {
    const x = ratio(a.ours?.reqPerSec ?? Number.NaN, a.naive?.reqPerSec ?? 0);
    rows.push([
      `API ${a.route}`,
      a.ours ? `${formatNumber(a.ours.reqPerSec)} req/s` : 'failed',
      `naive route ${a.naive ? `${formatNumber(a.naive.reqPerSec)} req/s` : 'failed'}`,
      formatRatio(x),
      `≥ ${TARGETS.apiVsNaive}× ${atLeast(x, TARGETS.apiVsNaive)} (aim ${TARGETS.apiAim}× ${atLeast(x, TARGETS.apiAim)})`,
    ]);
  }
  if (r.latency) {
    const l = r.latency;
    rows.push(
      [
        `Create → success p50 at ${formatNumber(l.targetPerSec)}/s`,
        `${formatNumber(l.p50Ms)} ms`,
        '–',
        '–',
        `≤ ${TARGETS.latencyP50Ms} ms ${atMost(l.p50Ms, TARGETS.latencyP50Ms)}`,
      ],
      [
        `Create → success p99 at ${formatNumber(l.targetPerSec)}/s`,
        `${formatNumber(l.p99Ms)} ms`,
        '–',
        '–',
        `≤ ${TARGETS.latencyP99Ms} ms ${atMost(l.p99Ms, TARGETS.latencyP99Ms)}`,
      ],
    );
  }
  rows.push(...flatRows(r));
  const cluster = r.cluster;
  if (cluster) {
    const x = replicationRatio(cluster);
    rows.push([
      `Drain ${formatNumber(cluster.cluster?.tasks ?? cluster.single?.tasks ?? 0)} on a 3-node cluster`,
      rateCell(cluster.cluster?.rate),
      `single node ${rateCell(cluster.single?.rate)}`,
      formatRatio(x),
      'reported (the cost of replication)',
    ]);
    // On a shared machine the rates swing with other work; CPU per task is the steadier cost.
    const [single, three] = [accountOf(cluster.single), accountOf(cluster.cluster)];
    rows.push([
      'CPU per task on a 3-node cluster, all processes',
      microsCell(three),
      `single node ${microsCell(single)}`,
      single && three ? formatRatio(ratio(three.totalMicrosPerItem, single.totalMicrosPerItem)) : '–',
      'reported',
    ]);
  }
  if (rows.length === 0) return '';
  return `## Summary\n\n${table(['Measure', 'task-pipeline', 'Baseline', 'Ratio', 'Target'], rows)}\n`;
}

/** Dispatch and drain at the largest backlog against the smallest (1M vs 10k with --full). */
function flatRows(r: BenchResults): string[][] {
  const scale = r.scale ?? [];
  const [small, large] = [scale[0], scale[scale.length - 1]];
  if (!small) return [];
  const target = `within ${formatNumber(TARGETS.flatWithin * 100)}%`;
  if (!large || large === small) {
    return [['Flat with the backlog', '–', '–', '–', `${target} (needs two backlogs: \`--full\`) –`]];
  }
  return (['dispatch', 'drain'] as const).map((part) => {
    const [smallRate, largeRate] = [pastWarmUp(small, part), pastWarmUp(large, part)];
    const flat = flatness(smallRate?.perSecond, largeRate?.perSecond);
    return [
      `${part === 'dispatch' ? 'Dispatch' : 'Drain'}, ${formatNumber(large.backlog)} waiting (past the warm-up)`,
      rateCell(largeRate),
      `${formatNumber(small.backlog)} waiting${small.runs > 1 ? ` (median of ${small.runs} runs)` : ''} ${rateCell(smallRate)}`,
      formatRatio(flat.ratio),
      `${target} ${flat.verdict}`,
    ];
  });
}

function pastWarmUp(row: ScaleRow | undefined, part: 'dispatch' | 'drain'): Rate | undefined {
  return part === 'dispatch' ? row?.dispatchPastWarmUp : row?.drainPastWarmUp;
}

/** A run too short to leave anything past the warm-up (the smoke test's 200 tasks) has no such rate. */
function pastWarmUpCell(row: ScaleRow, part: 'dispatch' | 'drain'): string {
  if (!row[part]) return 'failed';
  const rate = pastWarmUp(row, part);
  if (!rate) return '–';
  if (row.runs <= 1) return rateCell(rate);
  const each = part === 'dispatch' ? row.dispatchRunsPastWarmUp : row.drainRunsPastWarmUp;
  return `${rateCell(rate)} (median of ${each.map((r) => formatNumber(r)).join(' / ')})`;
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
| Node.js | ${r.runtime.node} for every measured process (${r.runtime.source}); the harness ran on ${m.node} |
| PostgreSQL | ${m.postgres} (the shared server, default settings, \`synchronous_commit\` on) |
| RabbitMQ | ${m.rabbitmq} (the shared node; every queue is a quorum queue) |

Every part runs in its own database and RabbitMQ vhost, created for it and dropped after, and
PostgreSQL checkpoints before each measured window (peers' too), so no part pays for the writes of
the one before it. Our producer runs at its best documented settings, as each peer does
(\`${settingsText(OUR_BEST_SETTINGS)}\`; the default of 1 keeps strict priorities). Our services run as the images run them: built (\`npm run build\`, redone when \`dist/\` is older than
the sources), \`node producer/dist/server.js\` and \`node consumer/dist/main.js\`, each in its own
process, with \`LOG_LEVEL=${r.serviceLogLevel}\` (the baselines log nothing either). The baselines
(the naive loop and route, the peers' workers, the raw publisher) are built and run the same way,
on the same Node.js: the images' major, which pg-boss 12 and graphile-worker 0.18 also require.

CPU is read from \`/proc\` over each measured window and divided by the items finished in it. A
system's processes count whole; the shared servers count as PostgreSQL's backends connected to the
part's own database (but the one the harness counts progress on) plus its background processes, and
RabbitMQ's one \`beam.smp\`, each less
other tenants' load, estimated by the lower of two idle samples of the same group just before and
just after the run (printed in section 5; on a busy machine this estimate is rough). Absolute
numbers swing by ±25% between runs here: compare the ratios, which are measured in the same run on
the same machine.
`;
}

function dispatchSection(r: BenchResults): string {
  if (!r.dispatch && !r.rawBroker) return '';
  const raw = r.rawBroker;
  const rows = (r.dispatch ?? []).map((d) => [
    formatNumber(d.backlog),
    rateCell(d.naive),
    rateCell(d.ours),
    formatRatio(ratio(d.ours?.perSecond ?? Number.NaN, d.naive?.perSecond ?? 0)),
    formatRatio(ratio(d.ours?.perSecond ?? Number.NaN, raw?.rate.perSecond ?? 0)),
    d.ours ? `${formatNumber(d.ours.count)} in ${formatNumber(d.ours.elapsedMs / 1000)} s` : '–',
    String((d.ours?.duplicates ?? 0) + (d.naive?.duplicates ?? 0)),
    `${microsCell(accountOf(d.naive))} / ${microsCell(accountOf(d.ours))}`,
  ]);
  const rawLine = raw
    ? `The broker's ceiling, measured in the same run: amqplib publishing ${raw.messageBytes}-byte work
messages (the seeded task text, the dispatcher's properties: persistent, mandatory, a messageId) to
the same kind of quorum queue, confirmed, with at most ${formatNumber(raw.window)} unconfirmed at a time,
and nothing else to do: **${rateCell(raw.rate, 'msg/s')}** (${formatNumber(raw.rate.count)} in
${formatNumber(raw.rate.elapsedMs / 1000)} s, ${microsCell(accountOf(raw.rate))} of CPU per message with the broker). That is
the ceiling of one message a task; the dispatcher sends up to \`DISPATCH_TASKS_PER_MESSAGE\` tasks of a
priority in one message (20 in these runs), so its tasks per second may pass it.`
    : 'The raw confirmed-publish run failed in this run (see the end).';
  return `## 1. Dispatcher vs the naive loop and the broker's ceiling

The naive loop is seed 002's: one task at a time, \`SELECT id, text FROM tasks WHERE status = 'waiting'
ORDER BY random() LIMIT 1\` (with an index on status), a confirmed publish, \`UPDATE … SET status =
'sent' WHERE id = $1\`. Ours is the producer's dispatcher with its defaults (\`DISPATCH_MAX_IN_FLIGHT\`
raised so the non-reporting sink cannot stop it). All publish to the same quorum queue, drained by
the same auto-ack sink, which counts the tasks each message carries; each rate runs from the first
message at the sink over a fixed window, or to the last message if the backlog empties first.

${rawLine}

${table(['Waiting rows', 'Naive loop', 'Dispatcher', '÷ naive', '÷ raw publish', 'Dispatcher counted', 'Duplicates', 'CPU per task, naive / dispatcher'], rows)}

${plot('dispatch.svg', 'Dispatch rate: dispatcher vs naive loop and raw confirmed publish')}
`;
}

function drainSection(r: BenchResults): string {
  if (!r.drain) return '';
  const ours = drainOf(r, 'task-pipeline');
  const rows = r.drain.map((d) => [
    systemName(d),
    `${formatNumber(d.rate.perSecond)}/s`,
    `${formatNumber(d.rate.elapsedMs / 1000)} s${d.completed ? '' : ' (timed out)'}`,
    d.system === 'task-pipeline' || !ours ? '–' : formatRatio(ratio(ours.rate.perSecond, d.rate.perSecond)),
    microsCell(accountOf(d)),
    d.settings,
  ]);
  return `## 2. End-to-end drain

${formatNumber(r.drain[0]?.tasks ?? 0)} tasks already waiting; ours: producer + 2 consumers,
\`PROCESSING_TIME_MS=0\`, \`FAILURE_RATE=0\`, until every task is \`success\` (dispatch, work, result
message, reporter, batch status update). The peers drain as many no-op jobs from the same database
server, each with as many worker processes as ours and its best throughput settings (swept on this
machine: see \`scripts/src/bench/baselines/peer-settings.ts\`). Each clock starts when every process
of the system is ready and stops at the last completion (task-pipeline: \`max(finished_at)\`;
pg-boss: \`max(completed_on)\`; graphile-worker deletes finished jobs, so: the 100 ms poll that
finds none left). CPU per task counts every process of the system, the servers it uses included
(section 5 splits it).

${table(['System', 'Rate', 'Time', 'task-pipeline ÷ it', 'CPU per task', 'Settings'], rows)}

${plot('drain.svg', 'End-to-end drain rate')}

${plot('cpu.svg', 'CPU per task by process')}
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
  return `Where the time goes (from the tasks' \`sent_at\`: when the broker confirmed the message, as the
dispatcher saw it, written by its record or by a report that came back first):

${table(
  ['Stage', 'p50', 'p99'],
  [
    row('created → sent (insert with its claim, publish, confirm)', l.stages.createdToSent),
    row('sent → success (work queue, worker, result queue, reporter, report)', l.stages.sentToSuccess),
  ],
)}`;
}

/** A server's idle samples before and after the run; the lower one was taken off. */
function idleCell(u: ProcessUsage): string {
  if (!u.server) return '–';
  const [before, after] = u.idleSamples ?? [u.idleCpuPercent ?? 0, u.idleCpuPercent ?? 0];
  return `${formatNumber(before)}% / ${formatNumber(after)}%`;
}

function usageRows(label: string, m: Measured | undefined, unit: string): string[][] {
  if (!m) return [];
  const account = accountOf(m);
  const rows = m.resources.map((u, i) => {
    const share = account?.shares[i];
    return [
      label,
      u.name,
      u.peakRssBytes === undefined ? '–' : formatBytes(u.peakRssBytes),
      `${formatNumber(u.avgCpuPercent)}%`,
      `${formatNumber(u.peakCpuPercent)}%`,
      idleCell(u),
      share ? formatNumber(share.perThousand) : '–',
      share ? formatNumber(share.microsPerItem) : '–',
    ];
  });
  rows.push([
    label,
    `**all, per ${unit}**`,
    '',
    '',
    '',
    '',
    account ? `**${formatNumber(account.totalMicrosPerItem / 1_000)}**` : '–',
    account ? `**${formatNumber(account.totalMicrosPerItem)}**` : '–',
  ]);
  return rows;
}

function resourcesSection(r: BenchResults): string {
  const rows = [
    ...(r.dispatch ?? []).flatMap((d) => [
      ...usageRows(`dispatch @ ${formatNumber(d.backlog)}: naive loop`, d.naive, 'task'),
      ...usageRows(`dispatch @ ${formatNumber(d.backlog)}: dispatcher`, d.ours, 'task'),
    ]),
    ...usageRows('raw confirmed publish', r.rawBroker?.rate, 'message'),
    ...(r.drain ?? []).flatMap((d: DrainRow) => usageRows(`drain: ${systemName(d)}`, d, 'task')),
    ...usageRows('latency run', r.latency, 'task'),
  ];
  if (rows.length === 0) return '';
  return `## 5. CPU and memory

Per process over each measured window: peak RSS (the kernel's high-water mark, VmHWM), CPU in % of
one core (average, and the highest 0.5 s sample), and CPU seconds per 1,000 items (tasks, jobs or
messages) and CPU microseconds per item. PostgreSQL rows add up the backends of the part's own
database and the server's background processes; the RabbitMQ row is its node, which serves every
vhost. The "idle" column gives each server's CPU while idle just before and just after the run; the
lower of the two is taken off its CPU as other tenants' load (CPU avg and peak are as counted,
before that). The totals add every row. The latency run counts the created tasks, from the first
create of the measured load until all succeeded.

${table(['Run', 'Process', 'Peak RSS', 'CPU avg', 'CPU peak', 'idle before / after', 'CPU s per 1,000', 'CPU µs per item'], rows)}
`;
}

function scaleSection(r: BenchResults): string {
  if (!r.scale) return '';
  const [small] = r.scale;
  const rows = r.scale.map((s) => [
    formatNumber(s.backlog),
    rateCell(s.dispatch),
    pastWarmUpCell(s, 'dispatch'),
    formatRatio(
      flatness(pastWarmUp(small, 'dispatch')?.perSecond, pastWarmUp(s, 'dispatch')?.perSecond).ratio,
    ),
    rateCell(s.drain),
    pastWarmUpCell(s, 'drain'),
    formatRatio(flatness(pastWarmUp(small, 'drain')?.perSecond, pastWarmUp(s, 'drain')?.perSecond).ratio),
  ]);
  const warmUp = small?.warmUp;
  const repeated =
    small && small.runs > 1
      ? `\nThe smallest backlog is measured ${small.runs} times and its median run counts (each run's rate
past the warm-up follows it): one window of about a second would otherwise let its noise decide.`
      : '';
  const explains = r.scale
    .filter((s) => s.explain)
    .map(
      (s) =>
        `Claim of one batch (500, random order) with ${formatNumber(s.backlog)} waiting rows:\n\n\`\`\`\n${s.explain}\n\`\`\``,
    );
  return `## 6. Scale

Dispatch rate into the sink and end-to-end drain rate (producer + 2 consumers), each over a fixed
window or until the backlog is empty, at each backlog size (1M with \`--full\`). The smallest
backlog is through in about a second, and its start (the first batch, code not yet optimised)
weighs on that; a large backlog's window hardly feels it. So each is also timed past the same
warm-up, from the moment its ${formatNumber(warmUp)}th task was sent (dispatch) or finished (drain)
to the end of its window, by the tasks' own \`sent_at\` and \`finished_at\`, and those rates are
compared with the smallest backlog's (the target: within ${formatNumber(TARGETS.flatWithin * 100)}%). A drain's window ends
at the backlog's last dispatch at the latest: a small backlog is all sent well before it is all done,
and its last stretch, the workers without the dispatcher beside them on the same cores, is a state a
large backlog never reaches. PostgreSQL checkpoints before every window, so the seed's writes are not
flushed inside it.${repeated}

${table(['Waiting rows', 'Dispatch', 'past the warm-up', '÷ smallest', 'Drain', 'past the warm-up', '÷ smallest'], rows)}

${explains.join('\n\n')}
`;
}

/** Cluster rate ÷ single-node rate: below 1 is what replicating every queue over three nodes costs. */
function replicationRatio(c: ClusterResult): number | undefined {
  return ratio(c.cluster?.rate.perSecond ?? Number.NaN, c.single?.rate.perSecond ?? 0);
}

function clusterSection(r: BenchResults): string {
  const c = r.cluster;
  if (!c) return '';
  const sides = [
    ['single node', c.single],
    ['3-node cluster', c.cluster],
  ] as const;
  const rows = sides.map(([label, d]) => [
    label,
    d ? `${formatNumber(d.rate.perSecond)}/s` : 'failed',
    d ? `${formatNumber(d.rate.elapsedMs / 1000)} s${d.completed ? '' : ' (timed out)'}` : '–',
    label === 'single node' ? '–' : formatRatio(replicationRatio(c)),
    microsCell(accountOf(d)),
  ]);
  const usage = sides.flatMap(([label, d]) => usageRows(label, d, 'task'));
  return `## 7. Cluster: the cost of replication

The drain of section 2 (${formatNumber(c.single?.tasks ?? c.cluster?.tasks ?? 0)} waiting tasks, producer + 2 consumers, no simulated work
or failures) through a private single ${c.broker} node, then through a private cluster of three
such nodes (\`AMQP_URL\` lists all three; every quorum queue has a replica on each node, and a message
is confirmed once two of them wrote it), in the same run, on the same machine: the three nodes share
its cores with everything else. The database is the shared server, as in section 2. Node rows are
each node's Erlang VM (beam.smp), started for the measure and stopped after it.

${table(['Broker', 'Rate', 'Time', '÷ single node', 'CPU per task'], rows)}

${table(['Run', 'Process', 'Peak RSS', 'CPU avg', 'CPU peak', 'idle before / after', 'CPU s per 1,000', 'CPU µs per item'], usage)}
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
      title: 'Dispatch rate: dispatcher vs naive loop (seed 002) and raw confirmed publish',
      subtitle: 'messages/s published and confirmed into one quorum queue',
      unit: '/s',
      log: true,
      groups: r.dispatch.map((d) => ({
        label: `${formatNumber(d.backlog)} waiting`,
        note: `${formatRatio(ratio(d.ours?.perSecond ?? Number.NaN, d.naive?.perSecond ?? 0))} naive, ${formatRatio(ratio(d.ours?.perSecond ?? Number.NaN, r.rawBroker?.rate.perSecond ?? 0))} raw`,
        bars: [
          { label: 'dispatcher', value: d.ours?.perSecond, ours: true },
          { label: 'naive loop', value: d.naive?.perSecond },
          { label: 'raw confirmed publish', value: r.rawBroker?.rate.perSecond },
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
            label: systemName(d),
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
            { label: 'target p50', value: TARGETS.latencyP50Ms },
            { label: 'target p99', value: TARGETS.latencyP99Ms },
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

const CPU_CATEGORIES = [
  { name: 'producer', color: '#2b6cb0' },
  { name: 'consumers', color: '#63b3ed' },
  { name: 'peer workers / publisher', color: '#805ad5' },
  { name: SERVER_LABELS.postgresql, color: '#38a169' },
  { name: SERVER_LABELS.rabbitmq, color: '#dd6b20' },
] as const;

function cpuCategory(name: string): string {
  if (name === 'producer') return 'producer';
  if (name.startsWith('consumer')) return 'consumers';
  if (name === SERVER_LABELS.postgresql || name === SERVER_LABELS.rabbitmq) return name;
  return 'peer workers / publisher';
}

/** CPU per item as one bar per system, split by process: the drain's, then measure 1's. */
function cpuChart(r: BenchResults): StackedChart | undefined {
  const bar = (label: string, m: Measured | undefined, ours: boolean): StackedBar[] => {
    const account = accountOf(m);
    if (!account) return [];
    const segments = account.shares.map((share) => ({
      label: share.name,
      value: share.microsPerItem,
      category: cpuCategory(share.name),
    }));
    return [{ label, segments, ours }];
  };
  const [firstDispatch] = r.dispatch ?? [];
  const bars = [
    ...(r.drain ?? []).flatMap((d) => bar(`drain: ${d.system}`, d, d.system === 'task-pipeline')),
    ...(firstDispatch
      ? bar(`dispatcher @ ${formatNumber(firstDispatch.backlog)}`, firstDispatch.ours, true)
      : []),
    ...bar('raw confirmed publish', r.rawBroker?.rate, false),
  ];
  if (bars.length === 0) return undefined;
  return {
    title: 'CPU per task, by process',
    subtitle: "CPU microseconds per task (job, message); the shared servers less other tenants' load",
    unit: 'µs',
    bars,
    categories: CPU_CATEGORIES,
    marker: r.drain
      ? { value: TARGETS.cpuMicrosPerTask, label: `drain target ${TARGETS.cpuMicrosPerTask} µs` }
      : undefined,
  };
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
    clusterSection(results),
    failuresSection(results),
  ].filter(Boolean);
  const plots = Object.fromEntries(
    Object.entries(charts(results)).map(([name, chart]) => [name, renderBarChart(chart)]),
  );
  const cpu = cpuChart(results);
  if (cpu) plots['cpu.svg'] = renderStackedChart(cpu);
  return { markdown: `${sections.join('\n')}\n${NOTES_MARKER}${notes}`, plots };
}
