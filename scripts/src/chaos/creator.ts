// Creates tasks at a steady rate, as a client that cares about its data would: every create carries
// an Idempotency-Key, and a create whose outcome is unknown (connection refused or reset, timeout,
// 5xx) is sent again with the same key and body until the producer answers. The producer must then
// hold exactly one task per key.
import { randomUUID } from 'node:crypto';
import { type BackoffPolicy, backoffMs } from '@task-pipeline/common';
import { Agent, request } from 'undici';

const PRIORITIES = ['high', 'medium', 'medium', 'low', 'low'] as const;
/** Between tries of a create whose outcome is unknown. */
const RETRY_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 5_000 };

export interface CreatorOptions {
  /** One producer, or several: creates take turns over them, and a retry goes to the next one. */
  producerUrls: readonly string[];
  total: number;
  ratePerSecond: number;
  /** Requests in flight at most; beyond it the schedule waits (the achieved rate is reported). */
  concurrency?: number;
  /** Give up on a key whose outcome is still unknown after this long. */
  giveUpAfterMs?: number;
  onProgress?: (stats: CreatorStats) => void;
}

export interface CreatorStats {
  sent: number;
  accepted: number;
  /** Requests whose outcome was unknown (and were therefore sent again). */
  unknownOutcomes: number;
  /** Keys accepted only after one or more unknown outcomes. */
  acceptedAfterRetry: number;
  /** 200 answers: the producer recognised a key it had already stored. */
  replays: number;
  rejected: number;
}

export interface CreatorResult extends CreatorStats {
  /** Idempotency-Key → taskId of every accepted create. */
  taskIdsByKey: ReadonlyMap<string, string>;
  /** Keys answered with a 4xx (a bug: every body sent is valid), with the status. */
  rejectedKeys: ReadonlyMap<string, number>;
  /** Keys whose outcome was never learned. */
  unresolvedKeys: readonly string[];
  elapsedMs: number;
}

export interface Creator {
  done: Promise<CreatorResult>;
  stats(): CreatorStats;
  /** Stops scheduling and retrying; what is still unknown is reported as unresolved. */
  abort(): void;
}

export function startCreator(options: CreatorOptions): Creator {
  const concurrency = options.concurrency ?? 32;
  const giveUpAfterMs = options.giveUpAfterMs ?? 300_000;
  const agent = new Agent({ connections: concurrency, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const accepted = new Map<string, string>();
  const rejectedKeys = new Map<string, number>();
  const unresolved: string[] = [];
  const stats: CreatorStats = {
    sent: 0,
    accepted: 0,
    unknownOutcomes: 0,
    acceptedAfterRetry: 0,
    replays: 0,
    rejected: 0,
  };
  const started = Date.now();
  let aborted = false;

  const attempt = async (key: string, body: string): Promise<'accepted' | 'rejected' | 'unknown'> => {
    const producerUrl = options.producerUrls[stats.sent % options.producerUrls.length];
    stats.sent += 1;
    try {
      const res = await request(`${producerUrl}/api/v1/create-task`, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body,
      });
      const text = await res.body.text();
      if (res.statusCode === 201 || res.statusCode === 200) {
        accepted.set(key, (JSON.parse(text) as { taskId: string }).taskId);
        if (res.statusCode === 200) stats.replays += 1;
        return 'accepted';
      }
      if (res.statusCode >= 400 && res.statusCode < 500 && res.statusCode !== 408 && res.statusCode !== 429) {
        rejectedKeys.set(key, res.statusCode);
        return 'rejected';
      }
      return 'unknown';
    } catch {
      return 'unknown';
    }
  };

  const createOne = async (index: number) => {
    const key = randomUUID();
    const body = JSON.stringify({
      text: `chaos task ${index}: ${randomUUID()}`,
      priority: PRIORITIES[index % PRIORITIES.length],
    });
    const firstTry = Date.now();
    for (let tries = 0; ; tries++) {
      const outcome = await attempt(key, body);
      if (outcome === 'accepted') {
        stats.accepted += 1;
        if (tries > 0) stats.acceptedAfterRetry += 1;
        return;
      }
      if (outcome === 'rejected') {
        stats.rejected += 1;
        return;
      }
      stats.unknownOutcomes += 1;
      if (aborted || Date.now() - firstTry > giveUpAfterMs) {
        unresolved.push(key);
        return;
      }
      await new Promise((r) => setTimeout(r, backoffMs(tries + 1, RETRY_BACKOFF)));
    }
  };

  const done = (async () => {
    const inFlight = new Set<Promise<void>>();
    const intervalMs = 1000 / options.ratePerSecond;
    for (let i = 0; i < options.total && !aborted; i++) {
      const due = started + i * intervalMs;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      while (inFlight.size >= concurrency) await Promise.race(inFlight);
      const p = createOne(i).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (i % 100 === 0) options.onProgress?.(stats);
    }
    await Promise.all(inFlight);
    options.onProgress?.(stats);
    await agent.close();
    return {
      ...stats,
      taskIdsByKey: accepted,
      rejectedKeys,
      unresolvedKeys: unresolved,
      elapsedMs: Date.now() - started,
    };
  })();

  return {
    done,
    stats: () => ({ ...stats }),
    abort() {
      aborted = true;
    },
  };
}
