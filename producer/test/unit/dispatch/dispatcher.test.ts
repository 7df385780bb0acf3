// The dispatch loop with fakes: an in-memory repository (the fence of PROTOCOL §6 without SQL) and an
// injected publisher, so its decisions (pause reasons, pipeline depth, in-flight room, the hold after
// whole batches fail, wake-ups) are checked in milliseconds. The SQL and the broker facts (locks,
// plans, confirms, crash points) stay with test/integration/dispatch/.
import { EventEmitter } from 'node:events';
import {
  type BrokerEvents,
  type ConfirmedPublisher,
  PublishError,
  type PublishErrorCode,
  type PublishOptions,
} from '@task-pipeline/rabbitmq';
import type { Priority } from '@task-pipeline/rabbitmq/contract';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { ProducerConfig } from '../../../src/config.js';
import type {
  ClaimedTask,
  FencedOutcome,
  InFlight,
  TaskRef,
} from '../../../src/dispatch/dispatch-repository.js';
import {
  type BatchResult,
  createDispatcher,
  type Dispatcher,
  type DispatcherOptions,
  type DispatchStatements,
} from '../../../src/dispatch/dispatcher.js';
import type { PauseReason } from '../../../src/dispatch/types.js';
import { buildWorkMessages } from '../../../src/dispatch/work-message.js';
import { createProducerMetrics } from '../../../src/metrics.js';

interface Row {
  id: string;
  text: string;
  priority: Priority;
  createdAt: Date;
  status: 'waiting' | 'sent' | 'success';
  attempts: number;
  /** performance.now() until which the row is leased. */
  claimedUntil: number;
}

const RANK: Record<Priority, number> = { high: 0, medium: 1, low: 2 };

/** The dispatcher's statements over a Map, with the same fence: status waiting and the claimed attempt. */
class MemoryRepository implements DispatchStatements {
  readonly rows = new Map<string, Row>();
  readonly claimLimits: number[] = [];
  readonly releases: { ids: string[]; delayMs: number }[] = [];
  readonly reservations: number[] = [];
  /** What other dispatchers hold, and how many there are besides this one. */
  elsewhere = { claimed: 0, others: 0 };
  /** Claims that throw before any succeeds (a database outage). */
  failingClaims = 0;
  /** While set, counts of the in-flight figure wait for it (a count still running). */
  countGate: Promise<void> | undefined;
  #next = 0;

  add(priority: Priority, count = 1): string[] {
    return Array.from({ length: count }, () => {
      this.#next += 1;
      const id = `00000000-0000-4000-8000-${String(this.#next).padStart(12, '0')}`;
      this.rows.set(id, {
        id,
        text: `task ${this.#next}`,
        priority,
        createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, this.#next)),
        status: 'waiting',
        attempts: 0,
        claimedUntil: 0,
      });
      return id;
    });
  }

  /** Sent tasks whose result came back: they leave the in-flight figure. */
  finish(count: number): void {
    for (const row of this.rows.values()) {
      if (count === 0) return;
      if (row.status === 'sent') {
        this.rows.delete(row.id);
        count -= 1;
      }
    }
  }

  withStatus(status: Row['status']): Row[] {
    return [...this.rows.values()].filter((row) => row.status === status);
  }

  async claim(options: Parameters<DispatchStatements['claim']>[0]): Promise<ClaimedTask[]> {
    this.claimLimits.push(options.limit);
    if (this.failingClaims > 0) {
      this.failingClaims -= 1;
      throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
    }
    const now = performance.now();
    const free = [...this.rows.values()]
      .filter((row) => row.status === 'waiting' && row.claimedUntil <= now)
      .sort((a, b) => RANK[a.priority] - RANK[b.priority])
      .slice(0, options.limit);
    return free.map((row) => {
      row.attempts += 1;
      row.claimedUntil = now + options.leaseSeconds * 1000;
      return {
        id: row.id,
        text: row.text,
        priority: row.priority,
        createdAt: row.createdAt,
        attempt: row.attempts,
      };
    });
  }

  #fenced(tasks: readonly TaskRef[], update: (row: Row) => void): FencedOutcome {
    const done: string[] = [];
    for (const task of tasks) {
      const row = this.rows.get(task.id);
      if (row?.status === 'waiting' && row.attempts === task.attempt) {
        update(row);
        done.push(task.id);
      }
    }
    return { done, locked: [] };
  }

  /** The ids each record statement was given. */
  readonly records: string[][] = [];

  /** A report applied to the row (as the batch route would): it leaves the waiting state for good. */
  report(id: string): void {
    const row = this.rows.get(id);
    if (row) row.status = 'success';
  }

  async recordSent(tasks: readonly TaskRef[], _confirmedAt: Date): Promise<FencedOutcome> {
    this.records.push(tasks.map((t) => t.id));
    return this.#fenced(tasks, (row) => {
      row.status = 'sent';
      row.claimedUntil = 0;
    });
  }

  async release(tasks: readonly TaskRef[], delayMs: number): Promise<FencedOutcome> {
    this.releases.push({ ids: tasks.map((t) => t.id), delayMs });
    const until = performance.now() + delayMs;
    return this.#fenced(tasks, (row) => {
      row.claimedUntil = until;
    });
  }

  async countInFlight(options: { cap: number }): Promise<InFlight> {
    await this.countGate;
    return {
      sent: Math.min(options.cap, this.withStatus('sent').length),
      claimedElsewhere: this.elsewhere.claimed,
      dispatchers: this.elsewhere.others + 1,
    };
  }

  async reserveClaims(options: { claimed: number }): Promise<void> {
    this.reservations.push(options.claimed);
  }

  async forgetClaims(): Promise<void> {}
}

/** The first claim of each task, as a report of it names it. */
const firstAttempts = (...ids: string[]) => ids.map((id) => ({ id, attempt: 1 }));

type Answer = 'confirm' | 'hold' | PublishErrorCode;

/** A confirmed publisher whose answers the test decides, per message. */
class FakePublisher implements ConfirmedPublisher {
  readonly published: { routingKey: string; body: Buffer; options: PublishOptions }[] = [];
  readonly #held: (() => void)[] = [];
  answer: (routingKey: string) => Answer = () => 'confirm';

  get pending(): number {
    return this.#held.length;
  }

  publish(_exchange: string, routingKey: string, body: Buffer, options: PublishOptions): Promise<void> {
    this.published.push({ routingKey, body, options });
    const answer = this.answer(routingKey);
    if (answer === 'confirm') return Promise.resolve();
    if (answer === 'hold') return new Promise((resolve) => this.#held.push(resolve));
    return Promise.reject(new PublishError(answer, `fake ${answer}`));
  }

  /** Confirms the oldest held publish. */
  confirmOne(): void {
    this.#held.shift()?.();
  }
}

class FakeBroker extends EventEmitter<BrokerEvents> {
  connected = true;
  blocked = false;
}

const config: ProducerConfig['dispatch'] = {
  enabled: true,
  batchSize: 500,
  tasksPerMessage: 1,
  // Long: the loop moves on wake-ups only, so a test that passes did not pass by polling.
  pollIntervalMs: 60_000,
  order: 'random',
  leaseSeconds: 30,
  confirmTimeoutMs: 5_000,
  maxInFlight: 10_000,
  // Recorded at once, so each step a test takes is the next step of the loop (the delay has its own tests).
  recordDelayMs: 0,
};

const logger = { debug() {}, info() {}, warn() {}, error() {} };

interface Setup {
  dispatcher: Dispatcher;
  repository: MemoryRepository;
  publisher: FakePublisher;
  broker: FakeBroker;
  metrics: ReturnType<typeof createProducerMetrics>;
  /** The channel is open (its publisher is current). */
  channel: { open: boolean };
  batches: BatchResult[];
}

const running: Dispatcher[] = [];

function setup(
  options: Partial<DispatcherOptions> & { dispatch?: Partial<ProducerConfig['dispatch']> } = {},
) {
  const repository = new MemoryRepository();
  const publisher = new FakePublisher();
  const broker = new FakeBroker();
  const metrics = createProducerMetrics();
  const channel = { open: true };
  const batches: BatchResult[] = [];
  const dispatcher = createDispatcher({
    config: { ...config, ...options.dispatch },
    repository,
    broker,
    publisher: { current: () => (channel.open ? publisher : undefined) },
    metrics,
    logger,
    random: () => 1,
    ...options,
    hooks: { afterBatch: (result) => batches.push(result), ...options.hooks },
  });
  running.push(dispatcher);
  return { dispatcher, repository, publisher, broker, metrics, channel, batches } satisfies Setup;
}

async function pausedGauge(metrics: Setup['metrics'], reason: PauseReason): Promise<number | undefined> {
  const { values } = await metrics.dispatcherPaused.get();
  return values.find((v) => v.labels.reason === reason)?.value;
}

const until = (check: () => boolean) =>
  vi.waitFor(
    () => {
      if (!check()) throw new Error('not yet');
    },
    // Within the test's own timeout, so that no check outlives its test (and advances another's fake clock).
    { timeout: 4_000, interval: 5 },
  );

/** Lets every promise chain that waits on no timer run to its end. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** Moves the fake clock on, then lets what it woke run. */
async function advance(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
  await flush();
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(running.splice(0).map((d) => d.stop(1_000)));
});

describe('dispatcher loop', () => {
  test('publishes each claimed task once as its work message, then records it sent', async () => {
    const { dispatcher, repository, publisher, metrics, batches } = setup();
    repository.add('low');
    repository.add('high', 2);
    dispatcher.start();
    await until(() => repository.withStatus('sent').length === 3);
    expect(publisher.published.map((p) => p.routingKey)).toEqual(['high', 'high', 'low']);
    for (const { body, options } of publisher.published) {
      const row = repository.rows.get(options.messageId);
      if (!row) throw new Error(`published ${options.messageId}, which is no task`);
      const task = { ...row, attempt: row.attempts };
      expect(body.equals(buildWorkMessages([task], 1)[0]?.body ?? Buffer.alloc(0))).toBe(true);
      expect(row.attempts).toBe(1);
    }
    expect(batches.flatMap((b) => b.sent)).toHaveLength(3);
    const dispatched = (await metrics.tasksDispatched.get()).values;
    expect(Object.fromEntries(dispatched.map((v) => [v.labels.priority, v.value]))).toEqual({
      high: 2,
      low: 1,
    });
  });

  test('wake(): an idle loop claims again at once, without waiting for the poll interval', async () => {
    const { dispatcher, repository } = setup();
    dispatcher.start();
    await until(() => repository.claimLimits.length === 1);
    repository.add('medium');
    dispatcher.wake();
    await until(() => repository.withStatus('sent').length === 1);
  });

  const brokerStates: [
    PauseReason,
    'connected' | 'channel-open' | 'unblocked',
    (s: Setup, bad: boolean) => void,
  ][] = [
    [
      'broker_down',
      'connected',
      (s, bad) => {
        s.broker.connected = !bad;
      },
    ],
    [
      'broker_down',
      'channel-open',
      (s, bad) => {
        s.channel.open = !bad;
      },
    ],
    [
      'broker_blocked',
      'unblocked',
      (s, bad) => {
        s.broker.blocked = bad;
      },
    ],
  ];
  test.each(brokerStates)(
    'paused %s until the broker says %s: nothing claimed meanwhile, then it resumes',
    async (reason, event, set) => {
      const s = setup();
      s.repository.add('high', 2);
      set(s, true);
      s.dispatcher.start();
      await until(() => s.dispatcher.stats().paused === reason);
      expect(await pausedGauge(s.metrics, reason)).toBe(1);
      expect(s.repository.claimLimits).toEqual([]);
      set(s, false);
      if (event === 'channel-open') s.broker.emit(event, 'dispatch');
      else s.broker.emit(event);
      await until(() => s.repository.withStatus('sent').length === 2);
      expect(s.dispatcher.stats().paused).toBeUndefined();
      expect(await pausedGauge(s.metrics, reason)).toBe(0);
    },
  );

  test('paused database while claims fail, then claims again after the backoff', async () => {
    const { dispatcher, repository, metrics } = setup();
    repository.add('high');
    repository.failingClaims = 1;
    dispatcher.start();
    await until(() => dispatcher.stats().paused === 'database');
    expect(await pausedGauge(metrics, 'database')).toBe(1);
    await until(() => repository.withStatus('sent').length === 1);
    expect(dispatcher.stats().paused).toBeUndefined();
  });

  test('in-flight room: claims only its share of DISPATCH_MAX_IN_FLIGHT, reserved before claiming', async () => {
    const { dispatcher, repository } = setup({ dispatch: { maxInFlight: 20 } });
    repository.add('high', 30);
    // 20 − 6 sent − 4 claimed by the one other dispatcher = 10 free; half of it each.
    repository.add('low', 6).forEach((id) => {
      const row = repository.rows.get(id);
      if (row) row.status = 'sent';
    });
    repository.elsewhere = { claimed: 4, others: 1 };
    const batch = await dispatcher.dispatchOnce();
    expect(repository.claimLimits).toEqual([5]);
    expect(repository.reservations).toEqual([5]);
    expect(batch?.sent).toHaveLength(5);
  });

  test('paused in_flight while the cap is reached, claiming again once results free room', async () => {
    const { dispatcher, repository, metrics } = setup({ dispatch: { maxInFlight: 4 } });
    repository.add('medium', 10);
    dispatcher.start();
    await until(() => dispatcher.stats().paused === 'in_flight');
    expect(await pausedGauge(metrics, 'in_flight')).toBe(1);
    expect(repository.withStatus('sent')).toHaveLength(4);
    expect(repository.withStatus('waiting')).toHaveLength(6);
    repository.finish(4);
    await until(() => repository.withStatus('waiting').length === 2);
    await until(() => dispatcher.stats().paused === 'in_flight');
    expect(repository.withStatus('sent')).toHaveLength(4);
  });

  test('pipeline depth: at most that many batches await their confirms; a confirm lets the next one go', async () => {
    const { dispatcher, repository, publisher } = setup({ pipelineDepth: 2, dispatch: { batchSize: 1 } });
    publisher.answer = () => 'hold';
    repository.add('low', 5);
    dispatcher.start();
    await until(() => publisher.pending === 2);
    // The loop now sleeps until a batch ends (poll interval: one minute): a turn changes nothing.
    await new Promise((resolve) => setImmediate(resolve));
    expect(dispatcher.stats().batchesInFlight).toBe(2);
    expect(publisher.published).toHaveLength(2);
    publisher.confirmOne();
    await until(() => publisher.published.length === 3);
    expect(repository.withStatus('sent')).toHaveLength(1);
    expect(publisher.pending).toBe(2);
    publisher.answer = () => 'confirm';
    publisher.confirmOne();
    publisher.confirmOne();
    await until(() => repository.withStatus('sent').length === 5);
  });

  test('a batch that fails as a whole: failed tasks released after a backoff, the failure counted', async () => {
    const { dispatcher, repository, publisher, metrics } = setup({ random: () => 0 });
    publisher.answer = () => 'NACKED';
    const ids = repository.add('high', 2);
    const batch = await dispatcher.dispatchOnce();
    expect(batch?.failed.map((f) => f.reason)).toEqual(['NACKED', 'NACKED']);
    // Attempt 1 of PUBLISH_FAILURE_BACKOFF (250 ms up), with the lowest jitter.
    expect(repository.releases).toEqual([{ ids, delayMs: 125 }]);
    expect(repository.withStatus('waiting')).toHaveLength(2);
    expect((await metrics.publishFailures.get()).values).toEqual([
      expect.objectContaining({ labels: { reason: 'NACKED' }, value: 2 }),
    ]);
    expect(dispatcher.stats().paused).toBe('publish_failures');
  });

  test('record delay: a batch with nothing confirmed does not wait it out to release and hold back', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const { dispatcher, repository, publisher } = setup({
      random: () => 0,
      dispatch: { recordDelayMs: 4_000 },
    });
    publisher.answer = () => 'NACKED';
    const ids = repository.add('high', 2);
    dispatcher.start();
    await advance(0);
    expect(repository.releases).toEqual([{ ids, delayMs: 125 }]);
    expect(dispatcher.stats().paused).toBe('publish_failures');
  });

  test('a partly failing batch (one priority unroutable) holds nothing back', async () => {
    const { dispatcher, repository, publisher } = setup();
    publisher.answer = (key) => (key === 'low' ? 'UNROUTABLE' : 'confirm');
    repository.add('high');
    repository.add('low');
    const batch = await dispatcher.dispatchOnce();
    expect(batch?.sent).toHaveLength(1);
    expect(batch?.failed.map((f) => f.reason)).toEqual(['UNROUTABLE']);
    expect(dispatcher.stats().paused).toBeUndefined();
  });

  test('DISPATCH_TASKS_PER_MESSAGE: tasks of a priority share messages; a failed message fails every task it carries', async () => {
    const { dispatcher, repository, publisher, metrics } = setup({ dispatch: { tasksPerMessage: 2 } });
    publisher.answer = (key) => (key === 'low' ? 'UNROUTABLE' : 'confirm');
    const high = repository.add('high', 3);
    const low = repository.add('low', 2);
    const batch = await dispatcher.dispatchOnce();
    const carried = publisher.published.map(({ routingKey, body }) => {
      const json = JSON.parse(body.toString()) as { tasks?: { taskId: string }[]; taskId?: string };
      return [routingKey, json.tasks ? json.tasks.map((t) => t.taskId) : [json.taskId]];
    });
    // Two of the three high tasks together, the third alone in the one-task form, both low together.
    expect(carried).toEqual([
      ['high', high.slice(0, 2)],
      ['high', high.slice(2)],
      ['low', low],
    ]);
    expect([...(batch?.sent ?? [])].sort()).toEqual([...high].sort());
    expect(batch?.failed.map((f) => [f.task.id, f.reason])).toEqual(low.map((id) => [id, 'UNROUTABLE']));
    expect(
      repository
        .withStatus('waiting')
        .map((r) => r.id)
        .sort(),
    ).toEqual([...low].sort());
    // One message failed, carrying two tasks.
    expect((await metrics.publishFailures.get()).values).toEqual([
      expect.objectContaining({ labels: { reason: 'UNROUTABLE' }, value: 1 }),
    ]);
  });

  test('record delay: confirmed tasks wait it out; one reported meanwhile gets no record, and still counts', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const { dispatcher, repository, metrics, batches } = setup({ dispatch: { recordDelayMs: 1_000 } });
    const [first, second, third] = repository.add('medium', 3) as [string, string, string];
    dispatcher.start();
    await advance(0);
    // Confirmed and waiting: the route asks when, for the sent_at its report writes.
    const confirmed = dispatcher.confirmedAt(firstAttempts(first, second, third, 'not-ours'));
    expect([...confirmed.keys()]).toEqual([first, second, third]);
    expect(repository.records).toEqual([]);
    repository.report(first);
    dispatcher.reported(firstAttempts(first, 'not-ours'));
    await advance(999);
    expect(repository.records).toEqual([]);
    await advance(1);
    expect(repository.records).toEqual([[second, third]]);
    expect(repository.withStatus('sent').map((r) => r.id)).toEqual([second, third]);
    expect(batches[0]).toMatchObject({ sent: [second, third], notRecorded: [first] });
    const dispatched = (await metrics.tasksDispatched.get()).values;
    expect(dispatched.map((v) => v.value)).toEqual([3]);
    expect(dispatcher.stats().dispatched).toBe(3);
    // Recorded: nothing of them is held any more.
    expect(dispatcher.confirmedAt(firstAttempts(first, second, third)).size).toBe(0);
  });

  test('record delay: a report the dispatcher was not told of leaves the record to the fence', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const { dispatcher, repository, batches } = setup({ dispatch: { recordDelayMs: 1_000 } });
    const [first, second] = repository.add('medium', 2) as [string, string];
    dispatcher.start();
    await advance(0);
    // Applied by another producer: this one still records both, and the fence skips the finished row.
    repository.report(first);
    await advance(1_000);
    expect(repository.records).toEqual([[first, second]]);
    expect(batches[0]).toMatchObject({ sent: [second], notRecorded: [first] });
  });

  test('record delay: a task reported meanwhile frees its DISPATCH_MAX_IN_FLIGHT room at once', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const { dispatcher, repository, publisher } = setup({
      dispatch: { maxInFlight: 4, recordDelayMs: 4_000 },
    });
    const [first, second] = repository.add('medium', 6) as [string, string];
    dispatcher.start();
    await advance(0);
    expect(publisher.published).toHaveLength(4);
    expect(dispatcher.stats().paused).toBe('in_flight');
    repository.report(first);
    repository.report(second);
    dispatcher.reported(firstAttempts(first, second));
    // The next counts of the room, long before the delay ends: two finished, so two more go out.
    await advance(1_000);
    expect(publisher.published).toHaveLength(6);
    expect(repository.records).toEqual([]);
  });

  test('record delay: a task claimed again while its first batch waits is recorded by the second batch', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const { dispatcher, repository, publisher, batches } = setup({
      dispatch: { maxInFlight: 4, recordDelayMs: 4_000 },
    });
    const [task] = repository.add('medium', 1) as [string];
    const row = repository.rows.get(task) as Row;
    dispatcher.start();
    await advance(1_000);
    // Meanwhile an error report landed on another producer and an operator redrove the task: waiting
    // again, one attempt on. This dispatcher claims it again (attempt 3) while attempt 1 still waits.
    row.attempts += 1;
    row.claimedUntil = 0;
    dispatcher.wake();
    await advance(0);
    expect([publisher.published.length, row.attempts]).toEqual([2, 3]);
    expect(dispatcher.confirmedAt([{ id: task, attempt: 1 }]).size).toBe(1);
    expect(dispatcher.confirmedAt([{ id: task, attempt: 3 }]).size).toBe(1);

    // The first batch's record finds its attempt stale; the second's is its own and goes in.
    await advance(3_000);
    expect(batches.map((b) => [b.sent, b.notRecorded])).toEqual([[[], [task]]]);
    expect(row.status).toBe('waiting');
    await advance(1_000);
    expect(batches.map((b) => [b.sent, b.notRecorded])).toEqual([
      [[], [task]],
      [[task], []],
    ]);
    expect(repository.records).toEqual([[task], [task]]);
    expect(row.status).toBe('sent');

    // Both claims have left this dispatcher's count: with the task finished, the whole room is free.
    repository.finish(1);
    repository.add('medium', 4);
    dispatcher.wake();
    await advance(0);
    expect(publisher.published).toHaveLength(6);
  });

  test('record delay: the tasks waiting it out leave the publish window, and stop() cuts it short', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const { dispatcher, repository } = setup({
      pipelineDepth: 1,
      dispatch: { batchSize: 2, recordDelayMs: 4_000 },
    });
    repository.add('medium', 5);
    dispatcher.start();
    await advance(0);
    // A window of one batch of 2, yet all five are claimed before any record: confirmed tasks do not
    // hold the window.
    expect(repository.claimLimits.slice(0, 3)).toEqual([2, 2, 2]);
    expect(repository.records).toEqual([]);
    const stopped = dispatcher.stop(10_000);
    await advance(0);
    await stopped;
    expect(repository.records.flat()).toHaveLength(5);
    expect(repository.withStatus('sent')).toHaveLength(5);
  });

  test('whole batches failing in a row: claims hold back for a growing backoff', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const { dispatcher, repository, publisher } = setup({ pipelineDepth: 1, dispatch: { batchSize: 1 } });
    publisher.answer = () => 'NACKED';
    repository.add('high', 3);
    dispatcher.start();
    await flush();
    expect(repository.claimLimits).toHaveLength(1);
    expect(dispatcher.stats().paused).toBe('publish_failures');
    // PUBLISH_FAILURE_BACKOFF with the highest jitter: 250 ms after the first, 500 ms after the second.
    await advance(249);
    expect(repository.claimLimits).toHaveLength(1);
    await advance(2);
    expect(repository.claimLimits).toHaveLength(2);
    await advance(498);
    expect(repository.claimLimits).toHaveLength(2);
    await advance(2);
    expect(repository.claimLimits).toHaveLength(3);
    // One confirmed batch ends the streak and the pause.
    publisher.answer = () => 'confirm';
    await advance(1_001);
    expect(repository.withStatus('sent').length).toBeGreaterThan(0);
    expect(dispatcher.stats().paused).toBeUndefined();
  });

  test('claimOnInsert: counted in tasks, so small inserts fill the whole window, not pipelineDepth batches', async () => {
    const s = setup({ pipelineDepth: 2, dispatch: { batchSize: 3 } });
    s.publisher.answer = () => 'hold';
    s.dispatcher.start();
    await until(() => s.repository.claimLimits.length === 1);
    // Window: 2 × 3 tasks. Six one-task inserts each await their confirm; the seventh does not fit.
    for (let i = 0; i < 6; i += 1) {
      const offer = s.dispatcher.claimOnInsert(1);
      expect(offer, `insert ${i + 1}`).toBeDefined();
      const [id] = s.repository.add('medium', 1);
      const row = s.repository.rows.get(id as string) as Row;
      row.attempts = 1;
      offer?.claimed([{ ...row, attempt: 1 }]);
    }
    await until(() => s.publisher.pending === 6);
    expect(s.dispatcher.claimOnInsert(1)).toBeUndefined();
    // One confirmed and recorded: one task of room again.
    s.publisher.confirmOne();
    await until(() => s.repository.withStatus('sent').length === 1);
    expect(s.dispatcher.claimOnInsert(1)).toBeDefined();
  });

  test('claimOnInsert while the room is counted: it comes out of the new share, as the row reserves', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const s = setup({ dispatch: { maxInFlight: 10 } });
    s.publisher.answer = () => 'hold';
    s.dispatcher.start();
    await advance(0);
    // A lone dispatcher takes half the room.
    expect(s.repository.claimLimits).toEqual([5]);
    let open = () => {};
    s.repository.countGate = new Promise<void>((resolve) => {
      open = resolve;
    });
    s.repository.add('medium', 10);
    await advance(1_500);
    s.dispatcher.wake();
    await advance(0);
    // The count is out; an insert claims three tasks from the old share meanwhile.
    const offer = s.dispatcher.claimOnInsert(3);
    expect(offer).toBeDefined();
    const inserted = s.repository.add('high', 3).map((id) => {
      const row = s.repository.rows.get(id) as Row;
      row.attempts = 1;
      row.claimedUntil = performance.now() + 30_000;
      return { ...row, attempt: 1 };
    });
    offer?.claimed(inserted);
    s.repository.countGate = undefined;
    open();
    await advance(0);
    // The count saw none of this dispatcher's tasks and reserved 5; the insert's 3 are part of it, so
    // the loop's next claim takes 2. (Later counts see the 5 as its own and reserve up to the cap.)
    expect(s.repository.reservations.slice(0, 2)).toEqual([5, 5]);
    expect(s.repository.claimLimits.slice(0, 2)).toEqual([5, 2]);
    expect(s.publisher.published).toHaveLength(10);
  });

  test('claimOnInsert: offered while idle with room, refused while paused', async () => {
    const s = setup();
    s.dispatcher.start();
    await until(() => s.repository.claimLimits.length === 1);
    const offer = s.dispatcher.claimOnInsert(2);
    expect(offer?.leaseSeconds).toBe(config.leaseSeconds);
    const ids = s.repository.add('medium', 2);
    for (const id of ids) {
      const row = s.repository.rows.get(id);
      if (row) row.attempts = 1;
    }
    offer?.claimed(ids.map((id) => ({ ...(s.repository.rows.get(id) as Row), attempt: 1 })));
    await until(() => s.repository.withStatus('sent').length === 2);
    // The insert's batch ended with nothing left waiting: no claim that could only find nothing.
    await flush();
    expect(s.repository.claimLimits).toHaveLength(1);
    s.broker.connected = false;
    expect(s.dispatcher.claimOnInsert(1)).toBeUndefined();
  });
});
