// Peak RSS and CPU of each process during a measure, read from /proc (Linux). The kernel keeps the
// peak RSS itself (VmHWM), so sampling only has to catch CPU. The shared servers are sampled as
// groups: PostgreSQL as the backends connected to the measure's own database plus the server's
// background processes (WAL writer, checkpointer…), RabbitMQ as its one beam.smp process, which
// serves every tenant's vhost. Other tenants' load on the shared parts is estimated by idle samples
// of the same groups just before and just after the run, and taken off (see cpu.ts).
import { readdirSync, readFileSync } from 'node:fs';
import type { ServerGroup } from './cpu.js';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat, 100 on every Linux this runs on. */
const TICKS_PER_SECOND = 100;

export interface ProcessUsage {
  name: string;
  /** Set on the rows of a shared server group. */
  server?: ServerGroup;
  /** Peak resident set size in bytes (VmHWM); undefined for server groups (shared memory). */
  peakRssBytes: number | undefined;
  /** Average CPU over the sampled period, in % of one core (servers: before the idle rate is taken off). */
  avgCpuPercent: number;
  /** Highest CPU over one sampling interval, in % of one core. */
  peakCpuPercent: number;
  /** CPU time (user + system) over the sampled period, seconds (servers: before the idle rate is taken off). */
  cpuSeconds: number;
  /** Servers: % of one core taken off as other tenants' load (the lower idle sample). */
  idleCpuPercent?: number;
  /** Servers: the group's CPU in % of one core while idle, just before and just after the run. */
  idleSamples?: [number, number];
  /** Length of the sampled period, seconds. */
  windowS: number;
}

function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm) ": state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

function peakRss(pid: number): number | undefined {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // exited while we looked
  }
}

/** Processes whose command name (/proc/<pid>/comm) is `comm`, with their command lines. */
function processesNamed(comm: string): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || read(`/proc/${entry}/comm`)?.trim() !== comm) continue;
    found.push({ pid: Number(entry), cmdline: (read(`/proc/${entry}/cmdline`) ?? '').replaceAll('\0', ' ') });
  }
  return found;
}

/**
 * Pure: whether a PostgreSQL process counts for a measure on `database`. A client backend's title
 * is `postgres: [cluster: ]user database host(port) activity`; it counts when it serves `database`.
 * Every other process (postmaster, WAL writer, checkpointer, background writer) works for all
 * databases and counts too, with its idle rate taken off.
 */
export function postgresProcessCounts(cmdline: string, database: string): boolean {
  const backend = /\s\S+\s(\S+)\s(?:\S+\(\d+\)|\[local\])(?:\s|$)/.exec(cmdline);
  return backend === null || backend[1] === database;
}

/** The pids of a shared server group, as a measure on `scope.database` counts them. */
export function serverPids(server: ServerGroup, scope: Omit<ServerScope, 'servers'> = {}): number[] {
  if (server === 'rabbitmq') return processesNamed('beam.smp').map((p) => p.pid);
  const { database, harnessPids = [] } = scope;
  return processesNamed('postgres')
    .filter((p) => database === undefined || postgresProcessCounts(p.cmdline, database))
    .filter((p) => !harnessPids.includes(p.pid))
    .map((p) => p.pid);
}

export const SERVER_LABELS: Record<ServerGroup, string> = {
  postgresql: 'postgresql',
  rabbitmq: 'rabbitmq (beam.smp)',
};

export interface ServerScope {
  servers: readonly ServerGroup[];
  /** The measure's database: PostgreSQL backends of other databases are other tenants'. */
  database?: string;
  /**
   * Backends serving the harness itself (the drain probe's counts): measuring, not the system, so
   * they count for no system.
   */
  harnessPids?: readonly number[];
}

interface Tracked {
  name: string;
  server?: ServerGroup;
  pids: () => number[];
  last: Map<number, number>;
  total: number;
  peak: number;
  peakRss: number;
}

export interface ResourceSampler {
  /** Stops sampling and returns one row per tracked process or server group. */
  stop(): ProcessUsage[];
}

export interface SampledProcess {
  name: string;
  pid: number;
}

function sampler(processes: readonly SampledProcess[], scope: ServerScope, intervalMs: number) {
  const tracked: Tracked[] = [
    ...processes.map((p) => ({ name: p.name, pids: () => [p.pid] })),
    ...scope.servers.map((server) => ({
      name: SERVER_LABELS[server],
      server,
      pids: () => serverPids(server, scope),
    })),
  ].map((t) => ({ ...t, last: new Map<number, number>(), total: 0, peak: 0, peakRss: 0 }));
  let lastSample = Date.now();
  const sample = (initial: boolean) => {
    const now = Date.now();
    const elapsed = now - lastSample;
    lastSample = now;
    for (const t of tracked) {
      let delta = 0;
      const seen = new Map<number, number>();
      for (const pid of t.pids()) {
        const ticks = cpuTicks(pid);
        if (ticks === undefined) continue;
        seen.set(pid, ticks);
        // A process that appeared since the last sample (a new backend) used all its ticks since.
        if (!initial) delta += ticks - (t.last.get(pid) ?? (t.server ? 0 : ticks));
        if (!t.server) t.peakRss = Math.max(t.peakRss, peakRss(pid) ?? 0);
      }
      t.last = seen;
      if (initial) continue;
      t.total += delta;
      if (elapsed > 0) t.peak = Math.max(t.peak, (delta / TICKS_PER_SECOND / (elapsed / 1000)) * 100);
    }
  };
  sample(true);
  const started = Date.now();
  const timer = setInterval(() => sample(false), intervalMs);
  timer.unref();
  return {
    tracked,
    finish(): number {
      clearInterval(timer);
      sample(false);
      return (Date.now() - started) / 1000;
    },
  };
}

type IdleRates = Partial<Record<ServerGroup, number>>;

/** The servers' CPU in % of one core over `ms` while the measure's own processes are not running. */
export async function sampleIdle(scope: ServerScope, ms: number): Promise<IdleRates> {
  const s = sampler([], scope, Math.min(500, ms));
  await new Promise((resolve) => setTimeout(resolve, ms));
  const seconds = s.finish();
  return Object.fromEntries(
    s.tracked.map((t) => [t.server, seconds > 0 ? (t.total / TICKS_PER_SECOND / seconds) * 100 : 0]),
  );
}

export function sampleResources(
  processes: readonly SampledProcess[],
  scope: ServerScope,
  intervalMs = 500,
): ResourceSampler {
  const s = sampler(processes, scope, intervalMs);
  return {
    stop() {
      const seconds = s.finish();
      return s.tracked.map((t) => {
        const cpuSeconds = t.total / TICKS_PER_SECOND;
        const usage: ProcessUsage = {
          name: t.name,
          peakRssBytes: t.server ? undefined : t.peakRss,
          avgCpuPercent: seconds > 0 ? (cpuSeconds / seconds) * 100 : 0,
          peakCpuPercent: t.peak,
          cpuSeconds,
          windowS: seconds,
        };
        if (t.server) usage.server = t.server;
        return usage;
      });
    },
  };
}
