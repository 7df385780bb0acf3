// Create N tasks through the public API and watch them until each is `success` or `error`.
// Shared by the `npm run tasks` CLI and the whole-system tests (local and container runs).
import { PRIORITIES } from '@task-pipeline/rabbitmq';
import type { ApiClient, Task, TaskStatus } from './api-client.js';
import { isTerminal, type Tally, tally } from './progress.js';

export type PriorityChoice = Task['priority'] | 'mixed';

/** Runs `work` over `items` with at most `concurrency` calls in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return results;
}

export interface CreateOptions {
  priority?: PriorityChoice;
  concurrency?: number;
  label?: string;
  onCreated?: (created: number) => void;
}

export async function createTasks(
  client: ApiClient,
  count: number,
  options: CreateOptions = {},
): Promise<Task[]> {
  const { priority = 'mixed', concurrency = 16, label = `run ${new Date().toISOString()}` } = options;
  let created = 0;
  return mapLimit(
    Array.from({ length: count }, (_, i) => i),
    concurrency,
    async (i) => {
      const task = await client.createTask({
        text: `task ${i + 1} of ${count} (${label})`,
        priority: priority === 'mixed' ? PRIORITIES[i % PRIORITIES.length] : priority,
      });
      created += 1;
      options.onCreated?.(created);
      return task;
    },
  );
}

export interface WatchOptions {
  /** Pause between polling rounds. */
  intervalMs?: number;
  timeoutMs?: number;
  concurrency?: number;
  /** Stop once every task is in one of these statuses (default: terminal). */
  until?: (status: TaskStatus | undefined) => boolean;
  onProgress?: (t: Tally) => void;
}

export interface WatchResult {
  tasks: Map<string, Task>;
  tally: Tally;
  /** False when the timeout ended the watch first. */
  complete: boolean;
}

/**
 * Polls the tasks that have not reached the target status yet. A failed read keeps the last known
 * state (the producer may be restarting) and is retried next round.
 */
export async function watchTasks(
  client: ApiClient,
  taskIds: readonly string[],
  options: WatchOptions = {},
): Promise<WatchResult> {
  const { intervalMs = 500, timeoutMs = 300_000, concurrency = 16, until = isTerminal } = options;
  const latest = new Map<string, Task>();
  const deadline = Date.now() + timeoutMs;
  const current = () =>
    tally(
      taskIds.map((id) => latest.get(id)?.status),
      taskIds.length,
    );
  for (;;) {
    const pending = taskIds.filter((id) => !until(latest.get(id)?.status));
    await mapLimit(pending, concurrency, async (id) => {
      try {
        latest.set(id, await client.getTask(id));
      } catch {
        // unreachable or 5xx: try again next round
      }
    });
    const t = current();
    options.onProgress?.(t);
    if (taskIds.every((id) => until(latest.get(id)?.status)))
      return { tasks: latest, tally: t, complete: true };
    if (Date.now() > deadline) return { tasks: latest, tally: t, complete: false };
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
