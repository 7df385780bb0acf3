// Wake-up (CONTRACT §6.5): a created task wakes this replica's loop at once and, through a
// rate-limited NOTIFY, the other replicas; the poll interval is only the fallback.
import type { Sql } from 'postgres';
import { backoffMs, DATABASE_BACKOFF } from './backoff.js';

/** The NOTIFY channel tasks-created wake-ups travel on. */
export const TASKS_CREATED_CHANNEL = 'task_pipeline_tasks_created';
/** At most one NOTIFY per replica per this many ms, however many tasks it creates. */
export const NOTIFY_MIN_INTERVAL_MS = 100;
/** How often a replica checks, by notifying itself, that its LISTEN connection still hears. */
export const LISTEN_CHECK_INTERVAL_MS = 30_000;
const LISTEN_CHECK_TIMEOUT_MS = 5_000;

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
  listenCheckIntervalMs?: number;
}

export interface CrossReplicaWakeup {
  /** Announces created tasks to the other replicas, rate-limited. */
  notify(): void;
  /** Starts listening (only replicas that dispatch need to). */
  listen(): void;
  close(): Promise<void>;
}

/**
 * LISTEN/NOTIFY between replicas. porsager's client re-listens after its listen connection drops, but
 * gives up silently if the database is still down at that moment; a periodic self-notification finds
 * a deaf listener and listens again. Missing a wake-up only costs latency: polling remains.
 */
export function createCrossReplicaWakeup(options: CrossReplicaWakeupOptions): CrossReplicaWakeup {
  const {
    sql,
    instanceId,
    logger,
    onWake,
    channel = TASKS_CREATED_CHANNEL,
    notifyIntervalMs = NOTIFY_MIN_INTERVAL_MS,
    listenCheckIntervalMs = LISTEN_CHECK_INTERVAL_MS,
  } = options;
  const createdPayload = `created:${instanceId}`;
  const pingPrefix = `ping:${instanceId}:`;
  let closed = false;
  let handle: { unlisten(): Promise<void> } | undefined;
  let listening = false;
  let failures = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let checkTimer: NodeJS.Timeout | undefined;
  let awaitedPing: string | undefined;
  let pings = 0;

  const throttle = createThrottle(notifyIntervalMs, () => {
    sql.notify(channel, createdPayload).catch((err: unknown) => {
      logger.debug({ err }, 'NOTIFY failed; other replicas will poll');
    });
  });

  const onNotify = (payload: string) => {
    if (payload === awaitedPing) awaitedPing = undefined;
    else if (payload.startsWith('created:') && payload !== createdPayload) onWake();
  };

  const subscribe = async (): Promise<void> => {
    if (closed || listening) return;
    listening = true;
    try {
      handle = await sql.listen(channel, onNotify);
      failures = 0;
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

  const schedule = (fn: () => void, ms: number) => {
    checkTimer = setTimeout(fn, ms);
    checkTimer.unref();
  };

  const ping = () => {
    if (closed) return;
    if (handle) {
      pings += 1;
      const token = `${pingPrefix}${pings}`;
      awaitedPing = token;
      sql.notify(channel, token).catch(() => {
        // The database is unreachable: that says nothing about the listener, so do not judge it.
        if (awaitedPing === token) awaitedPing = undefined;
      });
    }
    schedule(verify, LISTEN_CHECK_TIMEOUT_MS);
  };

  const verify = () => {
    if (closed) return;
    const stale = handle;
    if (awaitedPing !== undefined && stale) {
      logger.warn({ channel }, 'LISTEN connection stopped hearing notifications; listening again');
      handle = undefined;
      listening = false;
      void stale
        .unlisten()
        .catch(() => undefined)
        .then(subscribe);
    }
    awaitedPing = undefined;
    schedule(ping, listenCheckIntervalMs);
  };

  return {
    notify: () => {
      if (!closed) throttle.trigger();
    },
    listen() {
      if (listening || closed) return;
      void subscribe();
      schedule(ping, listenCheckIntervalMs);
    },
    async close() {
      closed = true;
      throttle.cancel();
      clearTimeout(retryTimer);
      clearTimeout(checkTimer);
      await handle?.unlisten().catch(() => undefined);
    },
  };
}
