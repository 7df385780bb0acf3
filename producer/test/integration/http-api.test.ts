// The producer's HTTP contract (PROTOCOL §4) through a real listening server: every status code with
// its problem+json body, the input edge cases of §3, and headers every response must carry.
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { expectExchangesDescribed } from '../support/openapi-contract.js';
import {
  AUTH,
  type Http,
  markSent,
  type ProblemJson,
  type Reply,
  startTestProducer,
  type TaskJson,
  type TestProducer,
} from '../support/producer.js';

let producer: TestProducer;
let http: Http;

beforeAll(async () => {
  producer = await startTestProducer('http_api');
  http = producer.http;
});
afterAll(async () => {
  await producer?.close();
});

function expectProblem(reply: Reply, status: number, detail?: RegExp): ProblemJson {
  expect(reply.status, reply.text).toBe(status);
  expect(reply.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(reply.headers['x-request-id']).toEqual(expect.any(String));
  const body = reply.body as ProblemJson;
  expect(body).toEqual({
    type: expect.stringMatching(/^(urn:task-pipeline:problem:|about:blank)/),
    title: expect.any(String),
    status,
    detail: expect.any(String),
  });
  if (detail) expect(body.detail).toMatch(detail);
  return body;
}

async function createTask(body: unknown = { text: `task ${randomUUID()}` }): Promise<TaskJson> {
  const reply = await http<TaskJson>('POST', '/api/v1/create-task', { json: body });
  expect(reply.status, reply.text).toBe(201);
  return reply.body;
}

async function countTasks(): Promise<number> {
  const [row] = await producer.sql<{ n: number }[]>`select count(*)::int as n from tasks`;
  return row?.n ?? 0;
}

describe('POST /api/v1/create-task', () => {
  test('201 with the task JSON, text trimmed, priority defaulted', async () => {
    const reply = await http<TaskJson>('POST', '/api/v1/create-task', { json: { text: '  hello  ' } });
    expect(reply.status).toBe(201);
    expect(reply.headers['content-type']).toMatch(/^application\/json/);
    expect(reply.body).toEqual({
      taskId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      text: 'hello',
      priority: 'medium',
      status: 'waiting',
      attempts: 0,
      error: null,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
      sentAt: null,
      finishedAt: null,
    });
    const high = await createTask({ text: 'urgent', priority: 'high' });
    expect(high.priority).toBe('high');
  });

  test('exactly 10,000 code points are accepted, even when each is a surrogate pair', async () => {
    const emoji = '😀'.repeat(10_000);
    expect(emoji.length).toBe(20_000);
    const task = await createTask({ text: emoji });
    expect(task.text).toBe(emoji);
    const [row] = await producer.sql<{ n: number }[]>`
      select char_length(text)::int as n from tasks where id = ${task.taskId}`;
    expect(row?.n).toBe(10_000);
  });

  test.each([
    ['empty text', { text: '' }, /text/],
    ['whitespace only', { text: ' \n\t ' }, /text: must be 1\.\.10000/],
    ['10,001 code points', { text: 'a'.repeat(10_001) }, /text: must be 1\.\.10000/],
    ['NUL', { text: 'a\u0000b' }, /NUL/],
    ['a lone high surrogate', { text: 'a\ud800b' }, /lone surrogate/],
    ['a lone low surrogate', { text: '\udc00' }, /lone surrogate/],
    ['text not a string', { text: 42 }, /text/],
    ['missing text', { priority: 'high' }, /text/],
    ['unknown priority', { text: 'x', priority: 'urgent' }, /priority/],
    ['unknown field', { text: 'x', priorty: 'high' }, /priorty/],
    ['an array body', [{ text: 'x' }], /body/],
  ])('400 for %s, nothing stored', async (_name, body, detail) => {
    const before = await countTasks();
    expectProblem(await http('POST', '/api/v1/create-task', { json: body }), 400, detail);
    expect(await countTasks()).toBe(before);
  });

  test('lone surrogates and NUL sent as JSON escapes are refused too', async () => {
    for (const raw of ['{"text":"\\ud800"}', '{"text":"a\\u0000"}', '{"text":"\\udfff\\ud800"}']) {
      expectProblem(
        await http('POST', '/api/v1/create-task', { raw, headers: { 'content-type': 'application/json' } }),
        400,
      );
    }
  });

  test('400 for malformed JSON and for an empty JSON body', async () => {
    const headers = { 'content-type': 'application/json' };
    expectProblem(
      await http('POST', '/api/v1/create-task', { raw: '{"text": "x"', headers }),
      400,
      /not valid JSON/,
    );
    expectProblem(await http('POST', '/api/v1/create-task', { raw: '', headers }), 400, /empty/);
    expectProblem(await http('POST', '/api/v1/create-task', { raw: 'null', headers }), 400);
  });

  test('415 for a body that is not application/json', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      expectProblem(
        await http('POST', '/api/v1/create-task', { raw: 'text=x', headers: { 'content-type': type } }),
        415,
        new RegExp(type.replace('+', '\\+')),
      );
    }
    expectProblem(await http('POST', '/api/v1/create-task', { raw: '{"text":"x"}' }), 415);
    const charset = await http('POST', '/api/v1/create-task', {
      raw: '{"text":"x"}',
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(charset.status).toBe(201);
  });

  test('413 above 128 KiB; a maximal JSON-escaped text just below still fits', async () => {
    // Every character escaped as \uXXXX: 10,000 code points of control characters ≈ 60 KB, and
    // 10,000 astral characters escaped as surrogate pairs ≈ 120 KB, the contract's worst case.
    const worst = JSON.stringify({ text: '😀'.repeat(10_000) }).replace(
      /[\ud800-\udfff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16)}`,
    );
    expect(worst.length).toBeGreaterThan(115_000);
    expect(worst.length).toBeLessThanOrEqual(128 * 1024);
    const fits = await http('POST', '/api/v1/create-task', {
      raw: worst,
      headers: { 'content-type': 'application/json' },
    });
    expect(fits.status, fits.text).toBe(201);

    const tooBig = JSON.stringify({ text: 'a'.repeat(128 * 1024) });
    expectProblem(
      await http('POST', '/api/v1/create-task', {
        raw: tooBig,
        headers: { 'content-type': 'application/json' },
      }),
      413,
      /131072 bytes/,
    );
  });

  describe('Idempotency-Key', () => {
    test('same key and same body → 200 with the same task, stored once', async () => {
      const key = `key-${randomUUID()}`;
      const first = await http<TaskJson>('POST', '/api/v1/create-task', {
        json: { text: 'once' },
        headers: { 'idempotency-key': key },
      });
      expect(first.status).toBe(201);
      // The same request after normalization: default priority spelt out, text padded.
      const again = await http<TaskJson>('POST', '/api/v1/create-task', {
        json: { text: ' once ', priority: 'medium' },
        headers: { 'idempotency-key': key },
      });
      expect(again.status).toBe(200);
      expect(again.body).toEqual(first.body);
      const [row] = await producer.sql<{ n: number }[]>`
        select count(*)::int as n from tasks where idempotency_key = ${key}`;
      expect(row?.n).toBe(1);
    });

    test('same key with another body → 422, nothing stored', async () => {
      const key = `key-${randomUUID()}`;
      await http('POST', '/api/v1/create-task', { json: { text: 'a' }, headers: { 'idempotency-key': key } });
      const before = await countTasks();
      const other = await http('POST', '/api/v1/create-task', {
        json: { text: 'a', priority: 'high' },
        headers: { 'idempotency-key': key },
      });
      expectProblem(other, 422, /Idempotency-Key/);
      expect(await countTasks()).toBe(before);
    });

    test('concurrent first uses of one key create one task', async () => {
      const key = `key-${randomUUID()}`;
      const replies = await Promise.all(
        Array.from({ length: 8 }, () =>
          http<TaskJson>('POST', '/api/v1/create-task', {
            json: { text: 'race' },
            headers: { 'idempotency-key': key },
          }),
        ),
      );
      expect(replies.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201]);
      expect(new Set(replies.map((r) => r.body.taskId)).size).toBe(1);
    });

    test('a key that is not 1..255 visible ASCII characters → 400', async () => {
      const reply = await http('POST', '/api/v1/create-task', {
        json: { text: 'x' },
        headers: { 'idempotency-key': 'x'.repeat(256) },
      });
      expectProblem(reply, 400, /idempotency-key/);
    });
  });
});

describe('GET /api/v1/get-task-data', () => {
  test('200 with the task', async () => {
    const task = await createTask();
    const reply = await http<TaskJson>('GET', `/api/v1/get-task-data?taskId=${task.taskId}`);
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual(task);
    const upper = await http<TaskJson>('GET', `/api/v1/get-task-data?taskId=${task.taskId.toUpperCase()}`);
    expect(upper.body.taskId).toBe(task.taskId);
  });

  test('400 for a bad or missing UUID, 404 for an unknown one', async () => {
    expectProblem(await http('GET', '/api/v1/get-task-data?taskId=not-a-uuid'), 400, /taskId/);
    expectProblem(await http('GET', '/api/v1/get-task-data'), 400, /taskId/);
    expectProblem(await http('GET', `/api/v1/get-task-data?taskId=${randomUUID()}&x=1`), 400, /x/);
    expectProblem(await http('GET', `/api/v1/get-task-data?taskId=${randomUUID()}`), 404, /does not exist/);
  });
});

describe('PUT /api/v1/update-task-status', () => {
  const put = (query: string, options: Parameters<Http>[2] = {}) =>
    http<TaskJson>('PUT', `/api/v1/update-task-status${query}`, {
      ...options,
      headers: { ...AUTH, ...options.headers },
    });

  test('query parameters: 200 with the task', async () => {
    const task = await createTask();
    await markSent(producer.sql, [task.taskId]);
    const reply = await put(`?taskId=${task.taskId}&taskStatus=success&attempt=1`);
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ taskId: task.taskId, status: 'success', attempts: 1, error: null });
    expect(reply.body.finishedAt).toEqual(expect.any(String));
    expect(reply.body.stale).toBeUndefined();
  });

  test('JSON body, and query plus body when they agree', async () => {
    const [a, b] = [await createTask(), await createTask()];
    await markSent(producer.sql, [a.taskId, b.taskId], 2);
    const byBody = await put('', {
      json: { taskId: a.taskId, taskStatus: 'error', attempt: 2, error: 'boom' },
    });
    expect(byBody.status).toBe(200);
    expect(byBody.body).toMatchObject({ status: 'error', error: 'boom' });
    const split = await put(`?taskId=${b.taskId}&attempt=2`, {
      json: { taskId: b.taskId, taskStatus: 'success' },
    });
    expect(split.status).toBe(200);
    expect(split.body.status).toBe('success');
  });

  test('400 when query and body disagree, nothing changes', async () => {
    const task = await createTask();
    await markSent(producer.sql, [task.taskId]);
    const reply = await put(`?taskId=${task.taskId}&taskStatus=error`, {
      json: { taskId: task.taskId, taskStatus: 'success' },
    });
    expectProblem(reply, 400, /taskStatus differs between the query and the body/);
    const attempt = await put(`?taskId=${task.taskId}&taskStatus=error&attempt=1`, { json: { attempt: 2 } });
    expectProblem(attempt, 400, /attempt differs/);
    const after = await http<TaskJson>('GET', `/api/v1/get-task-data?taskId=${task.taskId}`);
    expect(after.body.status).toBe('sent');
  });

  test.each([
    ['a bad UUID', '?taskId=nope&taskStatus=success', /taskId/],
    ['no taskId', '?taskStatus=success', /taskId/],
    ['no taskStatus', `?taskId=${randomUUID()}`, /taskStatus/],
    ['an unknown status', `?taskId=${randomUUID()}&taskStatus=sent`, /taskStatus/],
    ['a non-numeric attempt', `?taskId=${randomUUID()}&taskStatus=success&attempt=one`, /attempt/],
    ['a negative attempt', `?taskId=${randomUUID()}&taskStatus=success&attempt=-1`, /attempt/],
    ['an attempt beyond int4', `?taskId=${randomUUID()}&taskStatus=success&attempt=2147483648`, /attempt/],
    ['an unknown parameter', `?taskId=${randomUUID()}&taskStatus=success&attempts=1`, /attempts/],
  ])('400 for %s', async (_name, query, detail) => {
    expectProblem(await put(query), 400, detail);
  });

  test('400 for an error longer than 2,000 characters or carrying NUL; 2,000 are fine', async () => {
    const task = await createTask();
    await markSent(producer.sql, [task.taskId]);
    const base = { taskId: task.taskId, taskStatus: 'error', attempt: 1 };
    expectProblem(await put('', { json: { ...base, error: 'e'.repeat(2001) } }), 400, /error/);
    expectProblem(await put('', { json: { ...base, error: 'bad\u0000' } }), 400, /NUL/);
    expectProblem(await put('', { json: { ...base, attempts: 1 } }), 400, /attempts/);
    const ok = await put('', { json: { ...base, error: 'e'.repeat(2000) } });
    expect(ok.status).toBe(200);
    expect(ok.body.error).toHaveLength(2000);
  });

  test('404 for an unknown task', async () => {
    expectProblem(await put(`?taskId=${randomUUID()}&taskStatus=success`), 404, /does not exist/);
  });

  test('409 success ↔ error; 200 for the same status again; stale for an older attempt', async () => {
    const task = await createTask();
    await markSent(producer.sql, [task.taskId], 3);
    const first = await put(`?taskId=${task.taskId}&taskStatus=success&attempt=3`);
    expect(first.status).toBe(200);
    expectProblem(await put(`?taskId=${task.taskId}&taskStatus=error&attempt=3`), 409, /already success/);
    const again = await put(`?taskId=${task.taskId}&taskStatus=success&attempt=3`);
    expect(again.status).toBe(200);
    expect(again.body.updatedAt).toBe(first.body.updatedAt);
    const stale = await put(`?taskId=${task.taskId}&taskStatus=error&attempt=2`);
    expect(stale.status).toBe(200);
    expect(stale.body).toMatchObject({ status: 'success', stale: true, updatedAt: first.body.updatedAt });
    expectProblem(await put(`?taskId=${task.taskId}&taskStatus=success&attempt=4`), 409, /ahead/);
  });

  test('error(delivery_limit) → success for the same attempt', async () => {
    const task = await createTask();
    await markSent(producer.sql, [task.taskId]);
    const dead = await put('', {
      json: { taskId: task.taskId, taskStatus: 'error', attempt: 1, error: 'delivery_limit' },
    });
    expect(dead.body.status).toBe('error');
    const late = await put('', { json: { taskId: task.taskId, taskStatus: 'success', attempt: 1 } });
    expect(late.status).toBe(200);
    expect(late.body).toMatchObject({ status: 'success', error: null });
  });

  describe('401 before anything else', () => {
    const wrong = { authorization: 'Bearer wrong-token-wrong-token' };

    test.each([
      ['no header', {}],
      ['a wrong token', wrong],
      ['a token of another length', { authorization: 'Bearer x' }],
      ['another scheme', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }],
    ])('%s → 401 with WWW-Authenticate', async (_name, headers) => {
      const task = await createTask();
      const reply = await http('PUT', `/api/v1/update-task-status?taskId=${task.taskId}&taskStatus=success`, {
        headers,
      });
      expectProblem(reply, 401);
      expect(reply.headers['www-authenticate']).toMatch(/^Bearer/);
    });

    test('401, not 400/404/413/415, for bad input without the token; nothing changes', async () => {
      const task = await createTask();
      const route = '/api/v1/update-task-status';
      const cases: [string, Parameters<Http>[2]][] = [
        [`${route}?taskId=nope&taskStatus=success`, { headers: wrong }],
        [`${route}?taskId=${randomUUID()}&taskStatus=success`, { headers: wrong }],
        [
          `${route}?taskId=${task.taskId}`,
          { raw: '{"bad', headers: { ...wrong, 'content-type': 'application/json' } },
        ],
        [route, { raw: 'x', headers: { 'content-type': 'text/plain' } }],
        [route, { raw: 'x'.repeat(200 * 1024), headers: { 'content-type': 'application/json' } }],
        [
          '/api/v1/update-task-statuses',
          { raw: 'x'.repeat(2 * 1024 * 1024), headers: { 'content-type': 'application/json' } },
        ],
        ['/api/v1/update-task-statuses', { json: { reports: 'nope' } }],
      ];
      for (const [path, options] of cases) expectProblem(await http('PUT', path, options), 401);
      expectProblem(await http('POST', `/api/v1/redrive-task?taskId=nope`), 401);
      expectProblem(
        await http('POST', `/api/v1/redrive-task?taskId=${randomUUID()}`, { headers: wrong }),
        401,
      );
      const after = await http<TaskJson>('GET', `/api/v1/get-task-data?taskId=${task.taskId}`);
      expect(after.body).toEqual(task);
    });
  });

  test('413 above 128 KiB, 415 for another content type, 400 for malformed JSON', async () => {
    const route = '/api/v1/update-task-status';
    const json = { ...AUTH, 'content-type': 'application/json' };
    expectProblem(
      await http('PUT', route, { raw: `{"error":"${'e'.repeat(130 * 1024)}"}`, headers: json }),
      413,
    );
    expectProblem(
      await http('PUT', route, { raw: 'a=b', headers: { ...AUTH, 'content-type': 'text/plain' } }),
      415,
    );
    expectProblem(await http('PUT', route, { raw: '{"taskId":', headers: json }), 400, /not valid JSON/);
  });
});

describe('PUT /api/v1/update-task-statuses', () => {
  const batch = (body: unknown, headers: Record<string, string> = AUTH) =>
    http<{
      results: {
        taskId: string | null;
        status: number;
        stale?: true;
        task?: TaskJson;
        problem?: ProblemJson;
      }[];
    }>('PUT', '/api/v1/update-task-statuses', { json: body, headers });

  test('one result per item in request order, each with its own code; a malformed item gets a 400', async () => {
    const [a, b, c, d] = [await createTask(), await createTask(), await createTask(), await createTask()];
    await markSent(producer.sql, [a.taskId, b.taskId, c.taskId, d.taskId], 2);
    await producer.sql`update tasks set status = 'success' where id = ${c.taskId}`;
    const unknown = randomUUID();
    const reply = await batch({
      reports: [
        { taskId: a.taskId, taskStatus: 'success', attempt: 2 },
        { taskId: 'not-a-uuid', taskStatus: 'success' },
        { taskId: b.taskId, taskStatus: 'error', attempt: 1 },
        { taskId: unknown, taskStatus: 'success' },
        { taskId: c.taskId, taskStatus: 'error', attempt: 2 },
        { taskId: d.taskId, taskStatus: 'error', attempt: 2, error: 'x'.repeat(2001) },
        42,
        { taskId: d.taskId, taskStatus: 'error', attempt: 2, error: 'boom' },
      ],
    });
    expect(reply.status).toBe(200);
    const { results } = reply.body;
    expect(results.map((r) => [r.taskId, r.status])).toEqual([
      [a.taskId, 200],
      ['not-a-uuid', 400],
      [b.taskId, 200],
      [unknown, 404],
      [c.taskId, 409],
      [d.taskId, 400],
      [null, 400],
      [d.taskId, 200],
    ]);
    expect(results[0]?.task).toMatchObject({ status: 'success' });
    expect(results[1]?.problem).toMatchObject({ status: 400, detail: expect.stringMatching(/taskId/) });
    expect(results[2]).toMatchObject({ stale: true, task: { status: 'sent', attempts: 2 } });
    expect(results[3]?.problem).toMatchObject({ status: 404 });
    expect(results[4]?.problem).toMatchObject({
      status: 409,
      detail: expect.stringMatching(/already success/),
    });
    expect(results[5]?.problem).toMatchObject({ status: 400, detail: expect.stringMatching(/error/) });
    expect(results[7]?.task).toMatchObject({ status: 'error', error: 'boom' });
  });

  test('reports of one task in one batch are folded in request order', async () => {
    const task = await createTask();
    await markSent(producer.sql, [task.taskId]);
    const reply = await batch({
      reports: [
        { taskId: task.taskId, taskStatus: 'error', attempt: 1, error: 'delivery_limit' },
        { taskId: task.taskId, taskStatus: 'success', attempt: 1 },
        { taskId: task.taskId, taskStatus: 'error', attempt: 1, error: 'late' },
        { taskId: task.taskId, taskStatus: 'success', attempt: 1 },
      ],
    });
    expect(reply.body.results.map((r) => r.status)).toEqual([200, 200, 409, 200]);
    const after = await http<TaskJson>('GET', `/api/v1/get-task-data?taskId=${task.taskId}`);
    expect(after.body).toMatchObject({ status: 'success', error: null });
  });

  test.each([
    ['no reports', { reports: [] }],
    ['reports not an array', { reports: {} }],
    ['more than 1,000 reports', { reports: Array.from({ length: 1001 }, () => ({})) }],
    ['another top-level field', { reports: [{}], extra: 1 }],
    ['an array', []],
  ])('400 for an envelope with %s', async (_name, body) => {
    expectProblem(await batch(body), 400);
  });

  test('1 MiB limit: 1,000 reports with long errors fit, more than 1 MiB is a 413', async () => {
    const tasks = await producer.sql<{ id: string }[]>`
      insert into tasks (id, text, status, attempts)
      select gen_random_uuid(), 'bulk', 'sent', 1 from generate_series(1, 1000) returning id`;
    const reports = tasks.map(({ id }) => ({
      taskId: id,
      taskStatus: 'error',
      attempt: 1,
      error: 'e'.repeat(900),
    }));
    const body = JSON.stringify({ reports });
    expect(body.length).toBeGreaterThan(128 * 1024);
    expect(body.length).toBeLessThan(1024 * 1024);
    const reply = await batch({ reports });
    expect(reply.status).toBe(200);
    expect(reply.body.results.every((r) => r.status === 200)).toBe(true);

    const tooBig = JSON.stringify({
      reports: [{ taskId: randomUUID(), taskStatus: 'error', error: 'e'.repeat(1024 * 1024) }],
    });
    const refused = await http('PUT', '/api/v1/update-task-statuses', {
      raw: tooBig,
      headers: { ...AUTH, 'content-type': 'application/json' },
    });
    expectProblem(refused, 413, /1048576 bytes/);
  });

  test('415 and malformed JSON', async () => {
    const route = '/api/v1/update-task-statuses';
    expectProblem(
      await http('PUT', route, { raw: 'x', headers: { ...AUTH, 'content-type': 'text/plain' } }),
      415,
    );
    expectProblem(
      await http('PUT', route, {
        raw: '{"reports": [',
        headers: { ...AUTH, 'content-type': 'application/json' },
      }),
      400,
    );
  });
});

describe('POST /api/v1/redrive-task', () => {
  const redrive = (taskId: string) =>
    http<TaskJson>('POST', `/api/v1/redrive-task?taskId=${taskId}`, { headers: AUTH });

  test('error and sent → waiting with the next attempt; 409 from waiting and success; 404; 400', async () => {
    const [failed, lost, waiting, done] = [
      await createTask(),
      await createTask(),
      await createTask(),
      await createTask(),
    ];
    await markSent(producer.sql, [failed.taskId, lost.taskId, done.taskId], 2);
    await producer.sql`update tasks set status = 'error', error = 'boom' where id = ${failed.taskId}`;
    await producer.sql`update tasks set status = 'success' where id = ${done.taskId}`;

    for (const task of [failed, lost]) {
      const reply = await redrive(task.taskId);
      expect(reply.status).toBe(200);
      expect(reply.body).toMatchObject({
        status: 'waiting',
        attempts: 3,
        error: null,
        sentAt: null,
        finishedAt: null,
      });
    }
    expectProblem(await redrive(waiting.taskId), 409, /waiting/);
    expectProblem(await redrive(done.taskId), 409, /success/);
    expectProblem(await redrive(randomUUID()), 404);
    expectProblem(await redrive('nope'), 400, /taskId/);
  });
});

describe('every response', () => {
  test('404 for an unknown route is problem+json', async () => {
    expectProblem(
      await http('GET', '/api/v1/nothing-here?secret=1'),
      404,
      /^no route GET \/api\/v1\/nothing-here$/,
    );
  });

  test('405 with Allow for a method a known path does not take', async () => {
    const deleted = await http('DELETE', '/api/v1/create-task');
    expectProblem(deleted, 405, /^DELETE is not allowed on \/api\/v1\/create-task; use POST$/);
    expect(deleted.headers.allow).toBe('POST');
    const posted = await http('POST', '/health/live?x=1', { json: {} });
    expectProblem(posted, 405, /POST is not allowed on \/health\/live/);
    expect(posted.headers.allow).toBe('GET, HEAD');
    const options = await http('OPTIONS', '/api/v1/update-task-status');
    expectProblem(options, 405);
    expect(options.headers.allow).toBe('PUT');
  });

  test('x-request-id: a sane incoming one is reused, anything else is replaced', async () => {
    const sane = await http('GET', '/health/live', { headers: { 'x-request-id': 'trace-42.abc' } });
    expect(sane.headers['x-request-id']).toBe('trace-42.abc');
    const failing = await http('GET', '/api/v1/get-task-data?taskId=nope', {
      headers: { 'x-request-id': 'req-7' },
    });
    expect(failing.headers['x-request-id']).toBe('req-7');
    for (const bad of ['has space', 'x'.repeat(200), '<script>']) {
      const reply = await http('GET', '/health/live', { headers: { 'x-request-id': bad } });
      expect(reply.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  test('requests the HTTP parser refuses still get problem+json and an x-request-id', async () => {
    expectProblem(await http('GET', `/api/v1/get-task-data?taskId=${'x'.repeat(20 * 1024)}`), 431, /16 KiB/);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(producer.baseUrl).port), '127.0.0.1', () => {
        socket.write('NOT HTTP AT ALL\r\n\r\n');
      });
      let received = '';
      socket.on('data', (chunk) => {
        received += chunk.toString();
      });
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(raw).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/i);
    expect(raw).toMatch(/\r\nx-request-id: [0-9a-f-]{36}\r\n/);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toMatchObject({
      status: 400,
      title: 'Invalid request',
    });
  });

  test('a 5xx hides its cause', async () => {
    // A real fault: the table vanishes under the running producer (this file's own database).
    await producer.sql`alter table tasks rename to tasks_away`;
    try {
      const reply = await http('GET', `/api/v1/get-task-data?taskId=${randomUUID()}`);
      const problem = expectProblem(reply, 500);
      expect(problem.detail).not.toMatch(/tasks|relation|select|postgres/i);
      expect(problem.detail).toContain(String(reply.headers['x-request-id']));
    } finally {
      await producer.sql`alter table tasks_away rename to tasks`;
    }
  });
});

describe('health and metrics', () => {
  test('/health/live and /health/ready with the broker state', async () => {
    const live = await http('GET', '/health/live');
    expect(live).toMatchObject({ status: 200, body: { status: 'ok' } });
    await producer.app.broker.waitForConnect();
    const ready = await http('GET', '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({
      status: 'ready',
      checks: { database: 'up', broker: { connected: true, blocked: false } },
    });
  });

  test('/metrics: Prometheus text with HTTP latency by route and report outcomes', async () => {
    const reply = await http<string>('GET', '/metrics');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toMatch(/^text\/plain/);
    expect(reply.body).toMatch(/http_request_duration_seconds_bucket\{.*route="\/api\/v1\/create-task".*\}/);
    expect(reply.body).toMatch(/tasks_created_total\{priority="medium"\} [1-9]/);
    for (const outcome of ['applied', 'stale', 'duplicate', 'conflict', 'not_found', 'invalid']) {
      expect(reply.body).toMatch(new RegExp(`task_reports_total\\{outcome="${outcome}"\\} [1-9]`));
    }
    expect(reply.body).toMatch(/task_redrives_total [1-9]/);
    expect(reply.body).toMatch(/route="unmatched"/);
  });
});

describe('the published contract', () => {
  // Last in this file: it checks every response the tests above received.
  test('every response above is described in the served OpenAPI document', async () => {
    const exchanges = [...producer.exchanges];
    const statuses = new Set(exchanges.map((e) => e.status));
    for (const status of [200, 201, 400, 401, 404, 405, 409, 413, 415, 422, 431, 500])
      expect(statuses, `no ${status} among the responses`).toContain(status);
    await expectExchangesDescribed(producer, exchanges);
  });
});
