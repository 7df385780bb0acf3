// The task routes through app.inject() against a fake task repository: validation (nothing invalid
// reaches the repository), authentication first, and the mapping of each repository outcome to its
// status code and problem+json body. What the SQL decides (fences, locks, idempotency under
// concurrency) and the wire (a listening server, raw bytes) stay with test/integration/http-api.test.ts.
import type { CoalesceStats } from '@task-pipeline/common';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createServer } from '../../../src/app.js';
import { loadConfig } from '../../../src/config.js';
import { DISABLED_DISPATCHER_STATS, type DispatcherHandle } from '../../../src/dispatch/types.js';
import auth from '../../../src/plugins/auth.js';
import metrics from '../../../src/plugins/metrics.js';
import taskRoutes from '../../../src/routes/tasks.js';
import type {
  CreateResult,
  NewTask,
  RedriveResult,
  ReportedTask,
  ReportResult,
  TaskRepository,
} from '../../../src/tasks/repository.js';
import type { StatusUpdate, Task } from '../../../src/tasks/task.js';

const TOKEN = 'a-token-of-sixteen-or-more';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const ID = '5b0c3c1e-9d5c-4c1a-8f0e-2c8a4b7d9e10';
const OTHER_ID = '7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6';

function task(overrides: Partial<Task> = {}): Task {
  return {
    taskId: ID,
    text: 'resize image 42',
    priority: 'medium',
    status: 'sent',
    attempts: 1,
    error: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:01.000Z',
    sentAt: '2026-01-01T00:00:01.000Z',
    finishedAt: null,
    ...overrides,
  };
}

const IDLE: CoalesceStats = {
  waiting: 0,
  inFlight: 0,
  oldestWaitingMs: 0,
  oldestInFlightMs: 0,
  timedOut: 0,
  stalled: false,
};

/** The repository's outcomes as the test sets them; every call is recorded. */
class FakeTasks {
  readonly calls: { method: string; input: unknown }[] = [];
  created: CreateResult = {
    outcome: 'created',
    task: task({ status: 'waiting', attempts: 0 }),
    claimed: false,
  };
  found: Task | undefined = task();
  reportOutcome: (update: StatusUpdate) => ReportResult = () => ({ outcome: 'applied', task: task() });
  redriven: RedriveResult = { outcome: 'applied', task: task({ status: 'waiting', attempts: 2 }) };
  failure: unknown;

  #call(method: string, input: unknown): void {
    this.calls.push({ method, input });
    if (this.failure) throw this.failure;
  }

  repository(): TaskRepository {
    const report = async (update: StatusUpdate) => {
      this.#call('report', update);
      return this.reportOutcome(update);
    };
    const minimal = (result: ReportResult): ReportResult<ReportedTask> => {
      if (result.outcome === 'not_found') return result;
      const { taskId, status, attempts, error } = result.task;
      return { ...result, task: { taskId, status, attempts, error } };
    };
    return {
      get: async (taskId: string) => {
        this.#call('get', taskId);
        return this.found;
      },
      create: async (input: NewTask) => {
        this.#call('create', input);
        return this.created;
      },
      report: Object.assign(report, { stats: () => IDLE }),
      reportBatch: async (updates: readonly StatusUpdate[]) => {
        this.#call('reportBatch', updates);
        return updates.map((u) => this.reportOutcome(u));
      },
      reportBatchMinimal: async (updates: readonly StatusUpdate[]) => {
        this.#call('reportBatchMinimal', updates);
        return updates.map((u) => minimal(this.reportOutcome(u)));
      },
      redrive: async (taskId: string) => {
        this.#call('redrive', taskId);
        return this.redriven;
      },
      flow: () => ({ creates: IDLE, reports: IDLE }),
    };
  }
}

const tasks = new FakeTasks();
let taskCreated = 0;
let app: Awaited<ReturnType<typeof createServer>>;

// One app for the file (building it is most of the time); each test starts from fresh outcomes.
beforeAll(async () => {
  const config = loadConfig({ STATUS_API_TOKEN: TOKEN });
  app = await createServer(config, { logger: pino({ level: 'silent' }) });
  const dispatcher: DispatcherHandle = {
    taskCreated: () => {
      taskCreated += 1;
    },
    claimOnInsert: () => undefined,
    confirmedAt: () => new Map(),
    reported: () => undefined,
    stats: () => DISABLED_DISPATCHER_STATS,
  };
  app.decorate('dispatcher', dispatcher);
  app.decorate('tasks', tasks.repository());
  await app.register(metrics);
  await app.register(auth, { config });
  await app.register(taskRoutes);
  await app.ready();
});
beforeEach(() => {
  // The app holds this instance's repository: its outcomes and calls start afresh.
  Object.assign(tasks, new FakeTasks());
  taskCreated = 0;
  app.metrics.registry.resetMetrics();
});
afterAll(async () => {
  await app?.close();
});

type Injected = Awaited<ReturnType<typeof app.inject>>;

function expectProblem(reply: Injected, status: number, detail?: RegExp) {
  expect(reply.statusCode, reply.body).toBe(status);
  expect(reply.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = reply.json();
  expect(body).toEqual({
    type: expect.stringMatching(/^urn:task-pipeline:problem:/),
    title: expect.any(String),
    status,
    detail: expect.any(String),
  });
  if (detail) expect(body.detail).toMatch(detail);
}

async function reportsCounted(outcome: string): Promise<number> {
  const { values } = await app.metrics.reports.get();
  return values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

describe('POST /api/v1/create-task', () => {
  const create = (payload: unknown, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url: '/api/v1/create-task', payload: payload as object, headers });

  test('201 with the task; the repository gets the text trimmed and the priority defaulted; a dispatcher is woken', async () => {
    const reply = await create({ text: '  resize image 42  ' });
    expect(reply.statusCode, reply.body).toBe(201);
    expect(reply.json()).toEqual(task({ status: 'waiting', attempts: 0 }));
    expect(tasks.calls).toEqual([
      { method: 'create', input: { text: 'resize image 42', priority: 'medium', idempotencyKey: undefined } },
    ]);
    expect(taskCreated).toBe(1);
  });

  test('a task the insert claimed is being published already: no wake-up', async () => {
    tasks.created = { outcome: 'created', task: task({ attempts: 1 }), claimed: true };
    expect((await create({ text: 'x' })).statusCode).toBe(201);
    expect(taskCreated).toBe(0);
  });

  test('Idempotency-Key: a replay answers 200 with the first task, another body 422', async () => {
    tasks.created = { outcome: 'replayed', task: task() };
    const replay = await create({ text: 'x', priority: 'high' }, { 'idempotency-key': 'order-42' });
    expect(replay.statusCode).toBe(200);
    expect(replay.json()).toEqual(task());
    expect(tasks.calls[0]?.input).toEqual({ text: 'x', priority: 'high', idempotencyKey: 'order-42' });
    tasks.created = { outcome: 'key_reused' };
    expectProblem(await create({ text: 'y' }, { 'idempotency-key': 'order-42' }), 422, /another body/);
    expect(taskCreated).toBe(0);
  });

  test.each([
    ['an empty text', { text: '   ' }, /text/],
    ['an unknown field', { text: 'x', priorty: 'high' }, /priorty|unrecognized/i],
    ['an unknown priority', { text: 'x', priority: 'urgent' }, /priority/],
    ['NUL in the text', { text: 'a\u0000b' }, /NUL/],
    ['a lone surrogate', { text: 'a\ud800b' }, /surrogate/],
    ['no body', undefined, /body/],
  ])('400 for %s; nothing reaches the repository', async (_name, payload, detail) => {
    expectProblem(await create(payload), 400, detail);
    expect(tasks.calls).toEqual([]);
  });

  test('400 for an Idempotency-Key that is not 1..255 visible ASCII characters', async () => {
    expectProblem(await create({ text: 'x' }, { 'idempotency-key': 'a b' }), 400, /idempotency-key/);
    expect(tasks.calls).toEqual([]);
  });
});

describe('GET /api/v1/get-task-data', () => {
  const get = (query: string) => app.inject({ method: 'GET', url: `/api/v1/get-task-data${query}` });

  test('200 with the task, looked up by the id in lower case', async () => {
    const reply = await get(`?taskId=${ID.toUpperCase()}`);
    expect(reply.statusCode).toBe(200);
    expect(reply.json()).toEqual(task());
    expect(tasks.calls).toEqual([{ method: 'get', input: ID }]);
  });

  test('404 for an unknown task, 400 for a missing or malformed id', async () => {
    tasks.found = undefined;
    expectProblem(await get(`?taskId=${ID}`), 404, new RegExp(`task ${ID} does not exist`));
    expectProblem(await get('?taskId=nope'), 400, /taskId/);
    expectProblem(await get(''), 400, /taskId/);
    expect(tasks.calls).toHaveLength(1);
  });
});

describe('PUT /api/v1/update-task-status', () => {
  const put = (url: string, payload?: object, headers: Record<string, string> = AUTH) =>
    app.inject({ method: 'PUT', url: `/api/v1/update-task-status${url}`, payload, headers });

  test('401 before any validation: without the token a bad request is not even looked at', async () => {
    const reply = await put('?taskId=nope&taskStatus=maybe', undefined, {});
    expectProblem(reply, 401);
    expect(reply.headers['www-authenticate']).toMatch(/^Bearer/);
    expectProblem(
      await put(`?taskId=${ID}&taskStatus=success`, undefined, { authorization: 'Bearer wrong' }),
      401,
    );
    expect(tasks.calls).toEqual([]);
  });

  test('query and body together form the report; a disagreement is a 400 that reaches nothing', async () => {
    const reply = await put(`?taskId=${ID}`, { taskStatus: 'error', attempt: 1, error: 'timeout' });
    expect(reply.statusCode, reply.body).toBe(200);
    expect(tasks.calls).toEqual([
      { method: 'report', input: { taskId: ID, taskStatus: 'error', attempt: 1, error: 'timeout' } },
    ]);
    expectProblem(await put(`?taskId=${ID}&taskStatus=success`, { taskStatus: 'error' }), 400, /differs/);
    expectProblem(await put(`?taskId=${ID}&taskStatus=success&attempt=-1`), 400, /attempt/);
    expect(tasks.calls).toHaveLength(1);
  });

  test.each<[string, ReportResult, number, RegExp | undefined]>([
    ['applied', { outcome: 'applied', task: task({ status: 'success' }) }, 200, undefined],
    ['duplicate', { outcome: 'duplicate', task: task({ status: 'success' }) }, 200, undefined],
    ['not_found', { outcome: 'not_found' }, 404, /does not exist/],
    [
      'conflict',
      { outcome: 'conflict', reason: 'terminal', task: task({ status: 'error' }) },
      409,
      /is already error \(attempt 1\); success refused/,
    ],
    [
      'conflict',
      { outcome: 'conflict', reason: 'attempt_ahead', task: task({ attempts: 1 }) },
      409,
      /attempt 3 is ahead of task .*'s attempt 1/,
    ],
  ])('outcome %s → %i, counted', async (outcome, result, status, detail) => {
    tasks.reportOutcome = () => result;
    const reply = await put(`?taskId=${ID}&taskStatus=success&attempt=3`);
    if (status === 200) {
      expect(reply.statusCode, reply.body).toBe(200);
      expect(reply.json()).toEqual(task({ status: 'success' }));
    } else {
      expectProblem(reply, status, detail);
    }
    expect(await reportsCounted(outcome)).toBe(1);
  });

  test('a stale report answers 200 with stale: true', async () => {
    tasks.reportOutcome = () => ({ outcome: 'stale', task: task({ attempts: 3 }) });
    const reply = await put(`?taskId=${ID}&taskStatus=error&attempt=1`);
    expect(reply.statusCode).toBe(200);
    expect(reply.json()).toEqual({ ...task({ attempts: 3 }), stale: true });
  });

  test('the database away: 503 with Retry-After; anything unexpected: 500 without its cause', async () => {
    tasks.failure = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const away = await put(`?taskId=${ID}&taskStatus=success`);
    expectProblem(away, 503);
    expect(away.headers['retry-after']).toBeDefined();
    tasks.failure = new Error('secret internals');
    const broken = await put(`?taskId=${ID}&taskStatus=success`);
    expectProblem(broken, 500);
    expect(broken.body).not.toContain('secret internals');
  });
});

describe('PUT /api/v1/update-task-statuses', () => {
  const put = (payload: unknown, headers: Record<string, string> = {}) =>
    app.inject({
      method: 'PUT',
      url: '/api/v1/update-task-statuses',
      payload: payload as object,
      headers: { ...AUTH, ...headers },
    });

  test('one result per item in request order; a malformed item gets its own 400, its neighbours apply', async () => {
    tasks.reportOutcome = (u) =>
      u.taskId === OTHER_ID
        ? { outcome: 'conflict', reason: 'terminal', task: task({ taskId: OTHER_ID, status: 'error' }) }
        : { outcome: 'applied', task: task({ status: 'success' }) };
    const reply = await put({
      reports: [
        { taskId: ID, taskStatus: 'success', attempt: 1 },
        { taskId: 'nope', taskStatus: 'success' },
        { taskId: OTHER_ID.toUpperCase(), taskStatus: 'success' },
        42,
      ],
    });
    expect(reply.statusCode, reply.body).toBe(200);
    const { results } = reply.json();
    expect(results.map((r: { taskId: unknown; status: number }) => [r.taskId, r.status])).toEqual([
      [ID, 200],
      ['nope', 400],
      [OTHER_ID, 409],
      [null, 400],
    ]);
    expect(results[0].task).toEqual(task({ status: 'success' }));
    expect(results[1].problem.detail).toMatch(/taskId/);
    expect(results[2].problem.detail).toMatch(/already error/);
    expect(tasks.calls).toEqual([
      {
        method: 'reportBatch',
        input: [
          { taskId: ID, taskStatus: 'success', attempt: 1 },
          { taskId: OTHER_ID, taskStatus: 'success' },
        ],
      },
    ]);
    expect(await reportsCounted('invalid')).toBe(2);
  });

  test('Prefer: return=minimal → results without tasks, from the minimal statement, Preference-Applied', async () => {
    tasks.reportOutcome = (u) =>
      u.taskId === ID ? { outcome: 'stale', task: task({ attempts: 2 }) } : { outcome: 'not_found' };
    const reply = await put(
      {
        reports: [
          { taskId: ID, taskStatus: 'success', attempt: 1 },
          { taskId: OTHER_ID, taskStatus: 'error' },
        ],
      },
      { prefer: 'respond-async, return=minimal' },
    );
    expect(reply.statusCode, reply.body).toBe(200);
    expect(reply.headers['preference-applied']).toBe('return=minimal');
    expect(reply.json().results).toEqual([
      { taskId: ID, status: 200, stale: true },
      { taskId: OTHER_ID, status: 404, problem: expect.objectContaining({ status: 404 }) },
    ]);
    expect(tasks.calls.map((c) => c.method)).toEqual(['reportBatchMinimal']);
  });

  test.each([
    ['no reports', { reports: [] }],
    [
      'more than 1,000',
      { reports: Array.from({ length: 1_001 }, () => ({ taskId: ID, taskStatus: 'success' })) },
    ],
    ['an unknown envelope field', { reports: [{ taskId: ID, taskStatus: 'success' }], extra: 1 }],
    ['not an object', [1, 2]],
  ])('400 for an envelope with %s; nothing reaches the repository', async (_name, payload) => {
    expectProblem(await put(payload), 400);
    expect(tasks.calls).toEqual([]);
  });

  test('401 without the token, whatever the body', async () => {
    const reply = await app.inject({
      method: 'PUT',
      url: '/api/v1/update-task-statuses',
      payload: { reports: 1 },
    });
    expectProblem(reply, 401);
  });
});

describe('POST /api/v1/redrive-task', () => {
  const redrive = (id: string) =>
    app.inject({ method: 'POST', url: `/api/v1/redrive-task?taskId=${id}`, headers: AUTH });

  test('applied → 200 with the task waiting again, and a dispatcher is woken', async () => {
    const reply = await redrive(ID);
    expect(reply.statusCode).toBe(200);
    expect(reply.json()).toEqual(task({ status: 'waiting', attempts: 2 }));
    expect(taskCreated).toBe(1);
  });

  test('404 for an unknown task, 409 for a waiting or successful one, 400 for a bad id', async () => {
    tasks.redriven = { outcome: 'not_found' };
    expectProblem(await redrive(ID), 404);
    tasks.redriven = { outcome: 'conflict', task: task({ status: 'success' }) };
    expectProblem(await redrive(ID), 409, /is success; only error or sent tasks can be redriven/);
    expectProblem(await redrive('nope'), 400);
    expect(taskCreated).toBe(0);
  });
});
