// CPU accounting for a measured run: how much CPU each process spent per task. Pure, so the sums the
// report prints are tested. A process of the measured system counts whole. A shared server counts
// less what other tenants and background work cost it meanwhile, estimated from idle samples just
// before and just after the run (the lower of the two: other tenants' load comes in bursts, and a
// burst in one sample must not wipe out the run's own cost), never below zero.

export const SERVER_GROUPS = ['postgresql', 'rabbitmq'] as const;
export type ServerGroup = (typeof SERVER_GROUPS)[number];

export interface CpuUsage {
  name: string;
  server?: ServerGroup;
  /** CPU seconds over the sampled window, as /proc counted them. */
  cpuSeconds: number;
  /** Servers: % of one core taken off as other tenants' (see idleEstimate). */
  idleCpuPercent?: number;
  windowS: number;
}

/** Other tenants' load on a server during a run, from its idle samples before and after (% of a core). */
export function idleEstimate(before: number | undefined, after: number | undefined): number {
  const samples = [before, after].filter((v): v is number => v !== undefined && Number.isFinite(v));
  return samples.length > 0 ? Math.min(...samples) : 0;
}

/** The CPU seconds of `usage` that the measured run caused. */
export function attributableCpuSeconds(usage: CpuUsage): number {
  if (usage.server === undefined) return usage.cpuSeconds;
  const idle = ((usage.idleCpuPercent ?? 0) / 100) * usage.windowS;
  return Math.max(0, usage.cpuSeconds - idle);
}

export interface CpuShare {
  name: string;
  /** Attributable CPU seconds. */
  cpuSeconds: number;
  /** CPU seconds per 1,000 items (tasks, jobs, messages). */
  perThousand: number;
  microsPerItem: number;
}

export interface CpuAccount {
  items: number;
  shares: CpuShare[];
  /** Every share together, in CPU microseconds per item. */
  totalMicrosPerItem: number;
}

/** Per process and in total, the CPU each of `items` cost; undefined when nothing was counted. */
export function cpuAccount(usage: readonly CpuUsage[], items: number): CpuAccount | undefined {
  if (!(items > 0) || usage.length === 0) return undefined;
  const shares = usage.map((u) => {
    const cpuSeconds = attributableCpuSeconds(u);
    return {
      name: u.name,
      cpuSeconds,
      perThousand: (cpuSeconds / items) * 1_000,
      microsPerItem: (cpuSeconds / items) * 1e6,
    };
  });
  return {
    items,
    shares,
    totalMicrosPerItem: shares.reduce((sum, s) => sum + s.microsPerItem, 0),
  };
}

/** CPU per item of a measured run (its processes' usage and the items finished meanwhile). */
export function accountOf(
  measured: { resources: readonly CpuUsage[]; cpuItems: number } | undefined,
): CpuAccount | undefined {
  return measured ? cpuAccount(measured.resources, measured.cpuItems) : undefined;
}
