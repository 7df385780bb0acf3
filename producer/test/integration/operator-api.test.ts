// The operator API (PROTOCOL §4) through a real listening server: tokens, the list's filters and
// keyset pages, a task's history, the stats the write path keeps, the bulk redrive. Every response is
// checked against the served OpenAPI document at the end.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createDispatchRepository } from '../../src/dispatch/dispatch-repository.js';
import { startTaskGauges } from '../../src/dispatch/task-gauges.js';
import { encodeCursor } from '../../src/tasks/operator-repository.js';
import { SCAN_BUDGET } from '../../src/tasks/operator-types.js';
import { expectExchangesDescribed } from '../support/openapi-contract.js';
import {
  AUTH,
  logger,
  markSent,
  type ProblemJson,
  startTestProducer,
  type TaskJson,
  type TestProducer,
} from '../support/producer.js';

const READ_TOKEN = 'test-read-only-token-0123456789';
const READ = { authorization: `Bearer ${READ_TOKEN}` } as const;

interface Page {
  items: TaskJson[];
  nextCursor: string | null;
}

let producer: TestProducer;

beforeAll(async () => {
  producer = await startTestProducer('operator_api', {
    env: { OPERATOR_READ_TOKEN: READ_TOKEN, STALE_SENT_AFTER_S: '60', TASK_RETENTION: '0' },
  });
});
afterAll(async () => {
  await producer?.close();
});

const get = <T>(path: string, headers: Record<string, string> = AUTH) =>
  producer.http<T>('GET', path, { headers });

async function create(text: string, priority: 'high' | 'medium' | 'low' = 'medium'): Promise<TaskJson> {
  const reply = await producer.http<TaskJson>('POST', '/api/v1/create-task', { json: { text, priority } });
  expect(reply.status).toBe(201);
  return reply.body;
}

async function fail(taskIds: string[], error: string): Promise<void> {
  await markSent(producer.sql, taskIds);
  const reply = await producer.http('PUT', '/api/v1/update-task-statuses', {
    headers: AUTH,
    json: { reports: taskIds.map((taskId) => ({ taskId, taskStatus: 'error', attempt: 1, error })) },
  });
  expect(reply.status).toBe(200);
}

/** Every page of a listing, following nextCursor. */
async function all(query: string): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const suffix: string = cursor === null ? '' : `&cursor=${cursor}`;
    const reply = await get<Page>(`/api/v1/tasks?${query}${suffix}`);
    expect(reply.status, reply.text).toBe(200);
    ids.push(...reply.body.items.map((t) => t.taskId));
    cursor = reply.body.nextCursor;
    pages += 1;
  } while (cursor !== null);
  return { ids, pages };
}

describe('tokens', () => {
  test('every operator route needs a bearer token (401 problem first)', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/tasks'],
      ['GET', `/api/v1/tasks/${randomUUID()}`],
      ['GET', '/api/v1/task-stats'],
      ['POST', '/api/v1/redrive-tasks'],
    ] as const) {
      const reply = await producer.http<ProblemJson>(method, path, {
        headers: { authorization: 'Bearer nope' },
      });
      expect(reply.status, `${method} ${path}`).toBe(401);
      expect(reply.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
  });

  test('OPERATOR_READ_TOKEN reads but may not redrive (403), nor report a status', async () => {
    expect((await get('/api/v1/tasks', READ)).status).toBe(200);
    expect((await get('/api/v1/task-stats', READ)).status).toBe(200);
    const redrive = await producer.http<ProblemJson>('POST', '/api/v1/redrive-tasks', {
      headers: READ,
      json: { dryRun: true },
    });
    expect(redrive.status).toBe(403);
    expect(redrive.body.type).toMatch(/forbidden/);
    const single = await producer.http('POST', `/api/v1/redrive-task?taskId=${randomUUID()}`, {
      headers: READ,
    });
    expect(single.status).toBe(403);
    const report = await producer.http(
      'PUT',
      `/api/v1/update-task-status?taskId=${randomUUID()}&taskStatus=success`,
      {
        headers: READ,
      },
    );
    expect(report.status).toBe(403);
  });
});

describe('the list', () => {
  let tasks: TaskJson[];
  beforeAll(async () => {
    await producer.sql`delete from tasks`;
    tasks = [];
    for (let i = 0; i < 12; i += 1) {
      tasks.push(
        await create(
          `Resize image ${i}${i === 5 ? ' 100%_done' : ''}`,
          (['high', 'medium', 'low'] as const)[i % 3],
        ),
      );
    }
    // 0..3 error (two kinds), 4..5 sent (4 sent long ago), 6..7 success, the rest waiting.
    await fail(
      [tasks[0], tasks[1]].map((t) => (t as TaskJson).taskId),
      'Timeout after 30 s',
    );
    await fail(
      [tasks[2], tasks[3]].map((t) => (t as TaskJson).taskId),
      'disk full',
    );
    await markSent(
      producer.sql,
      [tasks[4], tasks[5]].map((t) => (t as TaskJson).taskId),
    );
    await producer.sql`update tasks set sent_at = now() - interval '1 hour' where id = ${(tasks[4] as TaskJson).taskId}`;
    await markSent(
      producer.sql,
      [tasks[6], tasks[7]].map((t) => (t as TaskJson).taskId),
    );
    await producer.http('PUT', '/api/v1/update-task-statuses', {
      headers: AUTH,
      json: {
        reports: [6, 7].map((i) => ({ taskId: (tasks[i] as TaskJson).taskId, taskStatus: 'success' })),
      },
    });
  });
  const ids = (...indexes: number[]) => indexes.map((i) => (tasks[i] as TaskJson).taskId);

  test('newest first by default, oldest first on request, pages follow the cursor without repeats', async () => {
    const newest = await all('limit=5');
    expect(newest.ids).toEqual(ids(11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    expect(newest.pages).toBe(3);
    const oldest = await all('limit=5&order=oldest');
    expect(oldest.ids).toEqual(ids(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
  });

  test('status: one, comma-separated, repeated', async () => {
    expect((await all('status=error')).ids).toEqual(ids(3, 2, 1, 0));
    expect((await all('status=sent,success')).ids).toEqual(ids(7, 6, 5, 4));
    expect((await all('status=sent&status=error&limit=3')).ids).toEqual(ids(5, 4, 3, 2, 1, 0));
    expect((await all('status=waiting')).ids).toEqual(ids(11, 10, 9, 8));
  });

  test('priority, text and error contain (case-insensitive, wildcards literal), created range, sent by age', async () => {
    expect((await all('priority=high')).ids).toEqual(ids(9, 6, 3, 0));
    expect((await all('priority=high,low&status=waiting')).ids).toEqual(ids(11, 9, 8));
    expect((await all('text=IMAGE%201')).ids).toEqual(ids(11, 10, 1));
    expect((await all(`text=${encodeURIComponent('100%_')}`)).ids).toEqual(ids(5));
    expect((await all(`text=${encodeURIComponent('0%')}`)).ids).toEqual(ids(5));
    expect((await all('error=timeout')).ids).toEqual(ids(1, 0));
    const from = (tasks[4] as TaskJson).createdAt;
    const to = (tasks[8] as TaskJson).createdAt;
    expect((await all(`createdAfter=${from}&createdBefore=${to}`)).ids).toEqual(ids(7, 6, 5, 4));
    const tenMinutesAgo = new Date(Date.now() - 600_000).toISOString();
    expect((await all(`sentBefore=${tenMinutesAgo}`)).ids).toEqual(ids(4));
    // sentBefore selects sent tasks only, whatever the status filter says.
    expect((await all(`sentBefore=${tenMinutesAgo}&status=error`)).ids).toEqual([]);
  });

  test('bad filters, limits and cursors are 400 problems', async () => {
    for (const query of [
      'status=lost',
      'priority=urgent',
      'limit=0',
      'limit=501',
      'limit=ten',
      'order=random',
      'createdAfter=yesterday',
      'cursor=bm9wZQ',
      `cursor=${Buffer.from('1.not-an-id').toString('base64url')}`,
      'colour=red',
      `text=${'x'.repeat(201)}`,
    ]) {
      const reply = await get<ProblemJson>(`/api/v1/tasks?${query}`);
      expect(reply.status, query).toBe(400);
      expect(reply.headers['content-type'], query).toMatch(/^application\/problem\+json/);
    }
  });

  test('a cursor from another position continues after it', async () => {
    const [row] = await producer.sql<{ micros: string }[]>`
      select (extract(epoch from created_at) * 1000000)::int8::text as micros from tasks where id = ${ids(6)[0] as string}`;
    const cursor = encodeCursor({ micros: (row as { micros: string }).micros, id: ids(6)[0] as string });
    const reply = await get<Page>(`/api/v1/tasks?cursor=${cursor}&limit=3`);
    expect(reply.body.items.map((t) => t.taskId)).toEqual(ids(5, 4, 3));
  });
});

describe('a task’s detail', () => {
  test('the task, the time of each state, and what every redrive reset', async () => {
    const task = await create('detail me');
    await fail([task.taskId], 'first failure');
    const redriven = await producer.http<TaskJson>('POST', `/api/v1/redrive-task?taskId=${task.taskId}`, {
      headers: AUTH,
    });
    expect(redriven.status).toBe(200);
    const reply = await get<TaskJson & { history: Record<string, unknown> }>(
      `/api/v1/tasks/${task.taskId.toUpperCase()}`,
      READ,
    );
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ taskId: task.taskId, status: 'waiting', attempts: 2, error: null });
    expect(reply.body.history).toMatchObject({
      createdAt: task.createdAt,
      sentAt: null,
      finishedAt: null,
      redrives: [
        {
          fromStatus: 'error',
          attempt: 1,
          error: 'first failure',
          sentAt: expect.any(String),
          finishedAt: expect.any(String),
        },
      ],
    });
  });

  test('404 for an unknown task, 400 for a malformed id', async () => {
    expect((await get(`/api/v1/tasks/${randomUUID()}`)).status).toBe(404);
    expect((await get('/api/v1/tasks/not-a-uuid')).status).toBe(400);
  });
});

describe('stats', () => {
  test('counts by status and priority agree with the table; ages, stale sent and throughput', async () => {
    await producer.sql`delete from tasks`;
    for (let i = 0; i < 6; i += 1) await create(`stats ${i}`, i < 2 ? 'high' : 'low');
    const ids = (await producer.sql<{ id: string }[]>`select id from tasks order by created_at`).map(
      (r) => r.id,
    );
    await fail(ids.slice(0, 1), 'boom');
    await markSent(producer.sql, ids.slice(1, 3));
    await producer.sql`update tasks set sent_at = now() - interval '5 minutes' where id = ${ids[1] as string}`;
    // Stats are reused for a second: wait the reuse out.
    await new Promise((r) => setTimeout(r, 1_100));
    const reply = await get<{
      counts: { status: string; priority: string; count: number }[];
      oldestWaitingAgeS: number | null;
      oldestSentAgeS: number | null;
      staleSent: { olderThanS: number; count: number };
      throughput: { minute: string; created: number; finished: number }[];
      at: string;
    }>('/api/v1/task-stats', READ);
    expect(reply.status).toBe(200);
    const actual = await producer.sql<{ status: string; priority: string; count: number }[]>`
      select status, priority::text, count(*)::int as count from tasks group by 1, 2 order by 1, 2`;
    expect(reply.body.counts).toEqual([...actual]);
    expect(reply.body.oldestWaitingAgeS).toBeGreaterThanOrEqual(0);
    expect(reply.body.oldestSentAgeS).toBeGreaterThanOrEqual(290);
    expect(reply.body.staleSent).toEqual({ olderThanS: 60, count: 1 });
    expect(reply.body.throughput).toHaveLength(60);
    const minutes = reply.body.throughput.map((m) => Date.parse(m.minute));
    expect(minutes).toEqual([...minutes].sort((a, b) => a - b));
    const total = (key: 'created' | 'finished') => reply.body.throughput.reduce((sum, m) => sum + m[key], 0);
    // Everything this file created (the deletes do not take a creation back), and the failures reported.
    expect(total('created')).toBeGreaterThanOrEqual(6);
    expect(total('finished')).toBeGreaterThanOrEqual(1);
  });

  test('the stale-sent gauge counts sent tasks past STALE_SENT_AFTER_S', async () => {
    const repository = createDispatchRepository(producer.sql, { statementDeadlineMs: 5_000 });
    expect((await repository.counts(60)).staleSent).toBe(1);
    expect((await repository.counts(3_600)).staleSent).toBe(0);
    await startTaskGauges({
      repository,
      metrics: producer.app.metrics,
      logger,
      staleSentAfterS: 60,
    }).refresh();
    const metrics = await get<string>('/metrics', {});
    expect(metrics.body).toMatch(/^tasks_stale_sent 1$/m);
  });
});

describe('bulk redrive', () => {
  let ids: string[];
  beforeAll(async () => {
    await producer.sql`delete from tasks`;
    for (let i = 0; i < 8; i += 1) await create(`bulk ${i}`);
    ids = (await producer.sql<{ id: string }[]>`select id from tasks order by created_at`).map((r) => r.id);
    await fail(ids.slice(0, 3), 'bulk failure'); // 0..2 error
    await markSent(producer.sql, ids.slice(3, 5)); // 3..4 sent
    await markSent(producer.sql, ids.slice(5, 6));
    await producer.http('PUT', `/api/v1/update-task-status?taskId=${ids[5]}&taskStatus=success`, {
      headers: AUTH,
    });
    // 5 success, 6..7 waiting
  });
  const redrive = (json: unknown) =>
    producer.http<{ dryRun: boolean; matched: number; redriven: number; taskIds: string[] }>(
      'POST',
      '/api/v1/redrive-tasks',
      { headers: AUTH, json },
    );
  const states = async () =>
    (
      await producer.sql<{ id: string; status: string; attempts: number }[]>`
      select id, status, attempts from tasks order by created_at`
    ).map((r) => `${r.status}/${r.attempts}`);

  test('a dry run counts and lists, and changes nothing', async () => {
    const before = await states();
    const reply = await redrive({ dryRun: true, limit: 2 });
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ dryRun: true, matched: 5, redriven: 0, taskIds: [ids[4], ids[3]] });
    expect(await states()).toEqual(before);
  });

  test('waiting and success tasks are never redriven, whatever the filter', async () => {
    const reply = await redrive({ status: ['waiting', 'success'] });
    expect(reply.body).toMatchObject({ matched: 0, redriven: 0, taskIds: [] });
  });

  test('redrives the matches up to the cap, as the single redrive does (attempts + 1, recorded)', async () => {
    const first = await redrive({ status: 'error', error: 'BULK', limit: 2 });
    expect(first.body).toMatchObject({ dryRun: false, matched: 3, redriven: 2 });
    expect(first.body.taskIds.sort()).toEqual([ids[2], ids[1]].sort());
    const second = await redrive({ status: ['error', 'sent'] });
    expect(second.body).toMatchObject({ matched: 3, redriven: 3 });
    expect(await states()).toEqual([
      'waiting/2',
      'waiting/2',
      'waiting/2',
      'waiting/2',
      'waiting/2',
      'success/1',
      'waiting/0',
      'waiting/0',
    ]);
    const [recorded] = await producer.sql<
      { count: number }[]
    >`select count(*)::int as count from task_redrives where task_id = any(${ids}::uuid[])`;
    expect(recorded?.count).toBe(5);
    expect((await redrive({})).body).toMatchObject({ matched: 0, redriven: 0 });
  });

  test('bad bodies are 400 problems', async () => {
    for (const json of [
      { limit: 0 },
      { limit: 1001 },
      { dryRun: 'yes' },
      { status: ['lost'] },
      { colour: 'red' },
    ]) {
      const reply = await redrive(json);
      expect(reply.status, JSON.stringify(json)).toBe(400);
    }
  });
});

describe('a bounded scan', () => {
  test(`a selective filter past ${SCAN_BUDGET.toLocaleString('en')} rows answers short pages with a cursor, and finds every match`, async () => {
    await producer.sql`delete from tasks`;
    // The match is the oldest task: a page examines SCAN_BUDGET rows, so the first page cannot reach it.
    await producer.sql`
      insert into tasks (id, text, created_at)
      select gen_random_uuid(), case when g = 1 then 'needle' else 'hay ' || g end,
             now() - interval '1 day' + g * interval '1 ms'
        from generate_series(1, ${SCAN_BUDGET + 5}) g`;
    const first = await get<Page>('/api/v1/tasks?text=needle');
    expect(first.body.items).toEqual([]);
    expect(first.body.nextCursor).not.toBeNull();
    const found = await all('text=needle');
    expect(found.ids).toHaveLength(1);
    expect(found.pages).toBe(2);
  });
});

describe('the published contract', () => {
  test('every response above is described in the served OpenAPI document', async () => {
    await expectExchangesDescribed(producer, [...producer.exchanges]);
  });
});
