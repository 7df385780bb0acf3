// Wake-up (PROTOCOL §6.5): a created task wakes this replica's loop at once and, through a
// rate-limited NOTIFY, the other replicas; the poll interval is only the fallback.

import { backoffMs } from '@task-pipeline/common';
import type { Sql } from 'postgres';
import { DATABASE_BACKOFF } from './backoff.js';

/** The NOTIFY channel tasks-created wake-ups travel on. */
export const TASKS_CREATED_CHANNEL = 'task_pipeline_tasks_created';
/** At most one NOTIFY per replica per this many ms, however many tasks it creates. */
export const NOTIFY_MIN_INTERVAL_MS = 100;
/** The longest a close waits for UNLISTEN. */
const UNLISTEN_TIMEOUT_MS = 250;

export interface WakeSignal {
  /** Wakes the current waiter, or the next one if nobody waits right now. */
  wake(): void;
  /** Resolves on a wake, after `timeoutMs`, or when `signal` aborts, whichever comes first. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void>;
}

export function createWakeSignal(): WakeSignal {
  let pending = false;
  const waiters = new Set<() => void>();
  return {
    wake() {
      pending = true;
      for (const done of [...waiters]) done();
    },
    wait(timeoutMs, signal) {
      if (pending || signal?.aborted) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          waiters.delete(done);
          pending = false;
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, timeoutMs));
        signal?.addEventListener('abort', done, { once: true });
        waiters.add(done);
      });
    },
  };
}

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Calls `fn` at most once per `intervalMs`: the first trigger runs at once, triggers inside the
 * interval collapse into one trailing call at its end (so the last create is never left unannounced).
 */
export function createThrottle(intervalMs: number, fn: () => void, timers: Timers = realTimers) {
  let lastRun = Number.NEGATIVE_INFINITY;
  let timer: unknown;
  const run = () => {
    timer = undefined;
    lastRun = timers.now();
    fn();
  };
  return {
    trigger() {
      if (timer !== undefined) return;
      const wait = lastRun + intervalMs - timers.now();
      if (wait <= 0) run();
      else timer = timers.setTimeout(run, wait);
    },
    cancel() {
      if (timer !== undefined) timers.clearTimeout(timer);
      timer = undefined;
    },
  };
}

export interface WakeupLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface CrossReplicaWakeupOptions {
  sql: Sql;
  /** Distinguishes this replica's own notifications from the others'. */
  instanceId: string;
  logger: WakeupLogger;
  /** Called when another replica created tasks. */
  onWake(): void;
  channel?: string;
  notifyIntervalMs?: number;
}

export interface CrossReplicaWakeup {
  /** Announces created tasks to the other replicas, rate-limited. */
  notify(): void;
  /**
   * Starts listening (only replicas that dispatch need to); resolves once LISTEN is in place. Callers
   * need not wait: until then (and whenever the listen connection is down) polling covers.
   */
  listen(): Promise<void>;
  close(): Promise<void>;
}

/**
 * LISTEN/NOTIFY between replicas. porsager's client keeps its own connection for LISTEN and listens
 * again after that connection drops (after a 10 s database outage it heard again ~19 s after the
 * restart, measured here). A wake-up missed meanwhile costs latency only: polling remains.
 */
export function createCrossReplicaWakeup(options: CrossReplicaWakeupOptions): CrossReplicaWakeup {
  const {
    sql,
    instanceId,
    logger,
    onWake,
    channel = TASKS_CREATED_CHANNEL,
    notifyIntervalMs = NOTIFY_MIN_INTERVAL_MS,
  } = options;
  const createdPayload = `created:${instanceId}`;
  let closed = false;
  let handle: { unlisten(): Promise<void> } | undefined;
  let listening = false;
  let failures = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let listened: () => void = () => undefined;
  const listening$ = new Promise<void>((resolve) => {
    listened = resolve;
  });

  const throttle = createThrottle(notifyIntervalMs, () => {
    sql.notify(channel, createdPayload).catch((err: unknown) => {
      logger.debug({ err }, 'NOTIFY failed; other replicas will poll');
    });
  });

  const onNotify = (payload: string) => {
    if (payload !== createdPayload) onWake();
  };

  const subscribe = async (): Promise<void> => {
    if (closed || listening) return;
    listening = true;
    try {
      handle = await sql.listen(channel, onNotify);
      failures = 0;
      listened();
      if (closed) await handle.unlisten().catch(() => undefined);
    } catch (err) {
      listening = false;
      failures += 1;
      const delay = backoffMs(failures, DATABASE_BACKOFF);
      logger.warn({ err, retryInMs: delay }, 'LISTEN failed; relying on polling until it works');
      retryTimer = setTimeout(() => void subscribe(), delay);
      retryTimer.unref();
    }
  };

  return {
    notify: () => {
      if (!closed) throttle.trigger();
    },
    listen() {
      void subscribe();
      return listening$;
    },
    async close() {
      closed = true;
      throttle.cancel();
      clearTimeout(retryTimer);
      listened();
      // The listen connection may have gone silent (no answer, no error): closing the pool ends it
      // anyway, so never wait for it longer than this.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        handle?.unlisten().catch(() => undefined),
        new Promise((resolve) => {
          timer = setTimeout(resolve, UNLISTEN_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
