// The benchmark code on N=200, so it cannot rot: every measure runs against the real services and
// baselines, and the report and plots are written. No timing is asserted (the machine is shared);
// only that every part ran, counted what it should, and produced its output.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { accountOf } from '../../src/bench/cpu.js';
import { planFor } from '../../src/bench/plan.js';
import { silentProgress } from '../../src/bench/progress.js';
import { NOTES_MARKER, PLOT_DIR } from '../../src/bench/report.js';
import { runBench } from '../../src/bench/run.js';

let outDir: string | undefined;
afterAll(async () => {
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

test('every measure runs on 200 tasks and writes BENCHMARKS.md with its plots', {
  timeout: 600_000,
}, async () => {
  outDir = await mkdtemp(join(tmpdir(), 'bench-smoke-'));
  const plan = planFor('smoke');
  const { results, files } = await runBench(plan, {
    outDir,
    progress: silentProgress,
    command: 'bench smoke',
  });

  expect(results.failures).toEqual([]);
  // Every measured process ran on the images' Node.js major, whatever this machine's node is.
  expect(results.runtime.node).toMatch(/^v24\./);
  const names = (usage: readonly { name: string }[] | undefined) => usage?.map((u) => u.name);
  const [dispatch] = results.dispatch ?? [];
  expect(dispatch?.naive?.count).toBeGreaterThan(0);
  // The dispatcher publishes the whole 200-task backlog, each task once.
  expect(dispatch?.ours?.count).toBe(200);
  expect(dispatch?.ours?.duplicates).toBe(0);
  expect(names(dispatch?.ours?.resources)).toEqual(['producer', 'postgresql', 'rabbitmq (beam.smp)']);
  // The broker's ceiling: every raw publish confirmed and delivered once, its CPU counted from the
  // publisher's readiness (it publishes only after saying so).
  const raw = results.rawBroker;
  expect(raw?.rate.count).toBe(200);
  expect(raw?.rate.duplicates).toBe(0);
  expect(raw?.rate.cpuItems).toBe(200);
  expect(names(raw?.rate.resources)).toEqual(['raw-publisher', 'rabbitmq (beam.smp)']);
  expect(accountOf(raw?.rate)?.shares).toHaveLength(2);
  expect(results.drain?.map((d) => [d.system, d.completed])).toEqual([
    ['task-pipeline', true],
    ['pg-boss', true],
    ['graphile-worker', true],
  ]);
  for (const drain of results.drain ?? []) {
    expect(drain.rate.count).toBe(200);
    expect(drain.resources.find((r) => r.peakRssBytes !== undefined)?.peakRssBytes).toBeGreaterThan(0);
  }
  const [ours, ...peers] = results.drain ?? [];
  expect(names(ours?.resources)).toEqual([
    'producer',
    'consumer-1',
    'consumer-2',
    'postgresql',
    'rabbitmq (beam.smp)',
  ]);
  // The peers wait to be told to start, so their CPU counts every job.
  for (const peer of peers) {
    expect(peer.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(names(peer.resources)).toEqual([`${peer.system}-1`, `${peer.system}-2`, 'postgresql']);
    expect(peer.cpuItems).toBe(200);
    expect(accountOf(peer)?.shares).toHaveLength(3);
  }
  for (const api of results.api ?? []) {
    for (const side of [api.ours, api.naive, api.prototype]) {
      expect(side?.requests).toBeGreaterThan(0);
      expect((side?.errors ?? 1) + (side?.non2xx ?? 1)).toBe(0);
    }
  }
  expect(results.api?.map((a) => a.route)).toEqual(['create-task', 'update-task-status']);
  expect(results.latency?.created).toBe(100);
  expect(results.latency?.succeeded).toBe(100);
  expect(results.latency?.stages?.createdToSent.p50Ms).toBeGreaterThan(0);
  expect(results.latency?.stages?.sentToSuccess.p99Ms).toBeGreaterThan(0);
  const [scale] = results.scale ?? [];
  expect(scale?.dispatch?.count).toBe(200);
  expect(scale?.drain?.count).toBe(200);
  // A fifth of the smallest backlog is left out of the rates past the warm-up (their SQL ran: no
  // failure above); 200 tasks go out in one dispatch batch, one sent_at, so those rates may be none.
  expect(scale?.warmUp).toBe(40);
  expect(scale?.explain).toMatch(/Update on tasks/);

  const markdown = await readFile(join(outDir, 'BENCHMARKS.md'), 'utf8');
  for (const heading of [
    '## Summary',
    '## 1. Dispatcher',
    '## 2. End-to-end',
    '## 3. API',
    '## 4. Latency',
    '## 5. CPU and memory',
    '## 6. Scale',
  ]) {
    expect(markdown).toContain(heading);
  }
  expect(markdown).toContain(NOTES_MARKER);
  for (const plot of ['dispatch.svg', 'drain.svg', 'cpu.svg', 'api.svg', 'latency.svg']) {
    const path = join(outDir, PLOT_DIR, plot);
    expect(files).toContain(path);
    expect(markdown).toContain(`${PLOT_DIR}/${plot}`);
    expect(await readFile(path, 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  }
});

test('the cluster measure drains 200 tasks through a private single node and a private 3-node cluster', {
  timeout: 600_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-smoke-cluster-'));
  try {
    const { results } = await runBench(planFor('smoke', ['cluster']), {
      outDir: dir,
      progress: silentProgress,
      command: 'bench smoke cluster',
    });
    expect(results.failures).toEqual([]);
    const { single, cluster, broker } = results.cluster ?? {};
    expect(broker).toMatch(/^RabbitMQ \d+\.\d+/);
    for (const drain of [single, cluster]) {
      expect(drain?.completed).toBe(true);
      expect(drain?.rate.count).toBe(200);
    }
    // The shared node is not part of these runs: each private node is a row of its own.
    const names = (d: typeof single) => d?.resources.map((u) => u.name);
    expect(names(single)).toEqual([
      'producer',
      'consumer-1',
      'consumer-2',
      'rabbitmq node (beam.smp)',
      'postgresql',
    ]);
    expect(names(cluster)).toEqual([
      'producer',
      'consumer-1',
      'consumer-2',
      'rabbitmq node 1 (beam.smp)',
      'rabbitmq node 2 (beam.smp)',
      'rabbitmq node 3 (beam.smp)',
      'postgresql',
    ]);
    // 200 tasks are ten work messages or so: a follower may use less than one clock tick (10 ms) in
    // that window, so the nodes count together.
    const nodes = cluster?.resources.filter((u) => u.name.startsWith('rabbitmq node')) ?? [];
    expect(nodes.reduce((sum, node) => sum + node.cpuSeconds, 0)).toBeGreaterThan(0);
    const markdown = await readFile(join(dir, 'BENCHMARKS.md'), 'utf8');
    expect(markdown).toContain('## 7. Cluster: the cost of replication');
    expect(markdown).toMatch(/^\| Drain 200 on a 3-node cluster \| [\d,.]+ tasks\/s \| single node /m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
