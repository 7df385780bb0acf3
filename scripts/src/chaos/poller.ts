// Samples every task's status during the run, straight from the database, and feeds the samples to
// the flip detector. Samples that fail (PostgreSQL is being restarted) are counted and skipped.
import postgres from 'postgres';
import { createFlipDetector, type FlipDetector, TERMINAL_STATUSES } from './flip-detector.js';
import type { ProgressSample } from './gaps.js';

export interface StatusCounts {
  waiting: number;
  sent: number;
  success: number;
  error: number;
}

export interface Poller {
  detector: FlipDetector;
  /** The latest successful sample's counts. */
  counts(): StatusCounts;
  samples(): { ok: number; failed: number };
  /** Dispatch and finish counts of every successful sample (atMs: Date.now() when it was read). */
  progress(): readonly ProgressSample[];
  stop(): Promise<void>;
}

export function startPoller(databaseUrl: string, intervalMs = 1_000): Poller {
  const sql = postgres(databaseUrl, {
    max: 1,
    connect_timeout: 3,
    idle_timeout: 5,
    onnotice: () => undefined,
  });
  const detector = createFlipDetector();
  let counts: StatusCounts = { waiting: 0, sent: 0, success: 0, error: 0 };
  const samples = { ok: 0, failed: 0 };
  const progress: ProgressSample[] = [];
  let stopped = false;
  let stopping: Promise<void> | undefined;

  const sample = async () => {
    const rows = await sql<{ id: string; status: string; attempts: number; error: string | null }[]>`
      select id, status, attempts, error from tasks`;
    const next: StatusCounts = { waiting: 0, sent: 0, success: 0, error: 0 };
    let dispatched = 0;
    for (const row of rows) {
      detector.observe({ taskId: row.id, status: row.status, attempts: row.attempts, error: row.error });
      if (row.status in next) next[row.status as keyof StatusCounts] += 1;
      dispatched += row.attempts;
    }
    counts = next;
    progress.push({
      atMs: Date.now(),
      dispatched,
      finished: next.success + next.error,
      waiting: next.waiting,
      sent: next.sent,
    });
  };

  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      try {
        await sample();
        samples.ok += 1;
      } catch {
        samples.failed += 1;
      }
      await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - started))));
    }
  })();

  return {
    detector,
    counts: () => counts,
    samples: () => ({ ...samples }),
    progress: () => progress,
    stop() {
      stopped = true;
      // One last sample after everything settled, so a flip right at the end is not missed.
      stopping ??= loop.then(async () => {
        await sample().catch(() => undefined);
        await sql.end({ timeout: 5 });
      });
      return stopping;
    },
  };
}

export const isTerminal = (status: string) => TERMINAL_STATUSES.has(status);
