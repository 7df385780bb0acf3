// Peak RSS and CPU of each process during a measure, read from /proc (Linux). The kernel keeps the
// peak RSS itself (VmHWM), so sampling only has to catch CPU; the shared servers are reported as
// groups (every `postgres` / `beam.smp` process), which includes load other tenants put on them.
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat, 100 on every Linux this runs on. */
const TICKS_PER_SECOND = 100;

export interface ProcessUsage {
  name: string;
  /** Peak resident set size in bytes (VmHWM); undefined for server groups (shared memory). */
  peakRssBytes: number | undefined;
  /** Average CPU over the sampled period, in % of one core. */
  avgCpuPercent: number;
  /** Highest CPU over one sampling interval, in % of one core. */
  peakCpuPercent: number;
}

interface Tracked {
  name: string;
  pids: () => number[];
  group: boolean;
  last: Map<number, number>;
  total: number;
  peak: number;
  peakRss: number;
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

export function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === comm) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

export interface ResourceSampler {
  /** Stops sampling and returns one row per tracked process or group. */
  stop(): ProcessUsage[];
}

export interface SampledProcess {
  name: string;
  pid: number;
}

export function sampleResources(
  processes: readonly SampledProcess[],
  options: { intervalMs?: number; serverGroups?: boolean } = {},
): ResourceSampler {
  const intervalMs = options.intervalMs ?? 500;
  const tracked: Tracked[] = processes.map((p) => ({
    name: p.name,
    pids: () => [p.pid],
    group: false,
    last: new Map(),
    total: 0,
    peak: 0,
    peakRss: 0,
  }));
  if (options.serverGroups !== false) {
    for (const [name, comm] of [
      ['postgresql (all)', 'postgres'],
      ['rabbitmq (beam.smp)', 'beam.smp'],
    ] as const) {
      tracked.push({
        name,
        pids: () => pidsNamed(comm),
        group: true,
        last: new Map(),
        total: 0,
        peak: 0,
        peakRss: 0,
      });
    }
  }
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
        if (!initial) delta += ticks - (t.last.get(pid) ?? (t.group ? 0 : ticks));
        if (!t.group) t.peakRss = Math.max(t.peakRss, peakRss(pid) ?? 0);
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
    stop() {
      clearInterval(timer);
      sample(false);
      const seconds = (Date.now() - started) / 1000;
      return tracked.map((t) => ({
        name: t.name,
        peakRssBytes: t.group ? undefined : t.peakRss,
        avgCpuPercent: seconds > 0 ? (t.total / TICKS_PER_SECOND / seconds) * 100 : 0,
        peakCpuPercent: t.peak,
      }));
    },
  };
}
