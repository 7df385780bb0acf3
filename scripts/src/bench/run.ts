// One benchmark run: the measures of the plan in order, each part isolated and allowed to fail alone,
// then BENCHMARKS.md, the plots and the raw results written under `outDir`.
import { rmSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TEST_POSTGRES_URL } from '@task-pipeline/testkit/isolation';
import { ownServiceLogDir, REPO_ROOT } from '@task-pipeline/testkit/processes';
import postgres from 'postgres';
import { machineFacts } from './machine.js';
import { measureApi } from './measures/api.js';
import { measureCluster } from './measures/cluster.js';
import { attempt, type MeasureContext } from './measures/common.js';
import { measureDispatch } from './measures/dispatch.js';
import { measureDrain } from './measures/drain.js';
import { measureLatency } from './measures/latency.js';
import { measureScale } from './measures/scale.js';
import type { BenchPlan } from './plan.js';
import type { Progress } from './progress.js';
import { PLOT_DIR, renderReport } from './report.js';
import type { BenchResults } from './results.js';
import { prepareRuntime } from './runtime.js';
import { SERVICE_LOG_LEVEL } from './services.js';

export interface RunOptions {
  outDir: string;
  progress: Progress;
  /** The command line shown in the report. */
  command: string;
}

export interface RunOutput {
  results: BenchResults;
  files: string[];
}

export async function runBench(plan: BenchPlan, options: RunOptions): Promise<RunOutput> {
  const started = Date.now();
  // The services' logs of this run go to one folder: removed after a run without failures (a failure
  // records the tail of the logs it needs), kept and named after one with. A test run gives its own.
  const ownLogs = ownServiceLogDir();
  const admin = postgres(TEST_POSTGRES_URL, { max: 1, onnotice: () => undefined });
  const machine = await machineFacts(admin).finally(() => admin.end());
  const runtime = await prepareRuntime(REPO_ROOT, options.progress);
  const results: BenchResults = {
    profile: plan.profile,
    command: options.command,
    startedAt: new Date(started).toISOString(),
    durationS: 0,
    serviceLogLevel: SERVICE_LOG_LEVEL,
    machine,
    runtime: { node: runtime.node.version, source: runtime.node.source },
    failures: [],
  };
  const ctx: MeasureContext = {
    progress: options.progress,
    failures: results.failures,
    runtime,
    idleSampleMs: plan.idleSampleMs,
  };
  const { progress } = options;
  progress.log(
    `bench (${plan.profile}): ${plan.measures.join(', ')} on ${machine.nproc} cores, load ${machine.loadAverage.join(' ')}, services on node ${runtime.node.version}`,
  );
  for (const measure of plan.measures) {
    progress.log(`— ${measure}`);
    switch (measure) {
      case 'dispatch': {
        const dispatch = await measureDispatch(plan.dispatch, ctx);
        results.dispatch = dispatch.rows;
        results.rawBroker = dispatch.raw;
        break;
      }
      case 'drain':
        results.drain = await measureDrain(plan.drain, ctx);
        break;
      case 'api':
        results.api = await attempt(ctx, 'api', () => measureApi(plan.api, ctx));
        break;
      case 'latency':
        results.latency = await attempt(ctx, 'latency', () => measureLatency(plan.latency, ctx));
        break;
      case 'scale':
        results.scale = await measureScale(plan.scale, ctx);
        break;
      case 'cluster':
        results.cluster = await measureCluster(plan.cluster, ctx);
        break;
    }
  }
  results.durationS = (Date.now() - started) / 1000;

  const reportPath = join(options.outDir, 'BENCHMARKS.md');
  const existing = await readFile(reportPath, 'utf8').catch(() => undefined);
  const report = renderReport(results, existing);
  const plotDir = join(options.outDir, PLOT_DIR);
  await mkdir(plotDir, { recursive: true });
  const files = [reportPath];
  await writeFile(reportPath, report.markdown);
  for (const [name, svg] of Object.entries(report.plots)) {
    files.push(join(plotDir, name));
    await writeFile(join(plotDir, name), svg);
  }
  const raw = join(plotDir, 'results.json');
  await writeFile(raw, `${JSON.stringify(results, null, 2)}\n`);
  files.push(raw);
  if (ownLogs && results.failures.length === 0) rmSync(ownLogs, { recursive: true, force: true });
  else if (ownLogs) progress.log(`service logs kept in ${ownLogs}`);
  return { results, files };
}
