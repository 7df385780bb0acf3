// The API baselines of measure 3: a minimal Fastify app with the same two routes on the same tasks
// table, no auth and no request log. MODE=naive runs one statement per request (the baseline);
// MODE=coalesced gathers the requests that arrive together into one multi-row statement — not a
// baseline but a prototype of the fix proposed for the producer, measured beside it.
// Runs as its own process like the producer and tells the parent over IPC when it listens.
//   env: DATABASE_URL, PORT, MODE (naive | coalesced)
import Fastify from 'fastify';
import postgres from 'postgres';

type Priority = 'high' | 'medium' | 'low';
type Row = Record<string, unknown> & { id: string };

interface Store {
  create(text: string, priority: Priority): Promise<Row | undefined>;
  update(taskId: string, status: 'success' | 'error'): Promise<Row | undefined>;
}

function naiveStore(sql: postgres.Sql): Store {
  return {
    async create(text, priority) {
      const [row] = await sql<Row[]>`
        insert into tasks (id, text, priority) values (gen_random_uuid(), ${text}, ${priority})
        returning *`;
      return row;
    },
    async update(taskId, status) {
      const [row] = await sql<Row[]>`
        update tasks set status = ${status}, finished_at = now(), updated_at = now()
        where id = ${taskId}
        returning *`;
      return row;
    },
  };
}

/**
 * Requests queued in the same event-loop turn go out as one statement (one round trip, one commit):
 * under load a batch forms by itself while earlier statements are in flight, and a lone request
 * waits for nothing but the current turn.
 */
function coalescer<I, K>(
  run: (items: I[]) => Promise<Row[]>,
  keyOf: (item: I) => K,
  keyOfRow: (row: Row) => K,
  max = 1_000,
) {
  let queue: { item: I; resolve: (row: Row | undefined) => void; reject: (err: unknown) => void }[] = [];
  const flush = () => {
    const batch = queue.slice(0, max);
    queue = queue.slice(max);
    if (queue.length > 0) setImmediate(flush);
    run(batch.map((b) => b.item)).then(
      (rows) => {
        const byKey = new Map(rows.map((r) => [keyOfRow(r), r]));
        for (const b of batch) b.resolve(byKey.get(keyOf(b.item)));
      },
      (err: unknown) => {
        for (const b of batch) b.reject(err);
      },
    );
  };
  return (item: I) =>
    new Promise<Row | undefined>((resolve, reject) => {
      if (queue.push({ item, resolve, reject }) === 1) setImmediate(flush);
    });
}

function coalescedStore(sql: postgres.Sql): Store {
  const create = coalescer<{ id: string; text: string; priority: Priority }, string>(
    (items) => sql<Row[]>`
      insert into tasks (id, text, priority)
      select * from unnest(${items.map((i) => i.id)}::uuid[], ${items.map((i) => i.text)}::text[],
                           ${items.map((i) => i.priority)}::task_priority[])
      returning *`,
    (item) => item.id,
    (row) => row.id,
  );
  const update = coalescer<{ id: string; status: string }, string>(
    (items) => sql<Row[]>`
      update tasks t set status = u.status, finished_at = now(), updated_at = now()
      from unnest(${items.map((i) => i.id)}::uuid[], ${items.map((i) => i.status)}::text[]) as u(id, status)
      where t.id = u.id
      returning t.*`,
    (item) => item.id,
    (row) => row.id,
  );
  return {
    create: (text, priority) => create({ id: crypto.randomUUID(), text, priority }),
    update: (taskId, status) => update({ id: taskId, status }),
  };
}

async function main(): Promise<void> {
  const { DATABASE_URL, PORT, MODE = 'naive' } = process.env;
  if (!DATABASE_URL || !PORT) throw new Error('DATABASE_URL and PORT are required');
  if (MODE !== 'naive' && MODE !== 'coalesced')
    throw new Error(`MODE must be naive or coalesced, not ${MODE}`);
  const sql = postgres(DATABASE_URL, { max: 10 });
  const store = MODE === 'naive' ? naiveStore(sql) : coalescedStore(sql);
  const app = Fastify({ logger: false });

  app.post<{ Body: { text: string; priority?: Priority } }>(
    '/api/v1/create-task',
    {
      schema: {
        body: {
          type: 'object',
          required: ['text'],
          properties: {
            text: { type: 'string', minLength: 1 },
            priority: { enum: ['high', 'medium', 'low'] },
          },
        },
      },
    },
    async (request, reply) =>
      reply.code(201).send(await store.create(request.body.text, request.body.priority ?? 'medium')),
  );

  app.put<{ Body: { taskId: string; taskStatus: 'success' | 'error' } }>(
    '/api/v1/update-task-status',
    {
      schema: {
        body: {
          type: 'object',
          required: ['taskId', 'taskStatus'],
          properties: { taskId: { type: 'string' }, taskStatus: { enum: ['success', 'error'] } },
        },
      },
    },
    async (request, reply) => {
      const task = await store.update(request.body.taskId, request.body.taskStatus);
      return task ?? reply.code(404).send({ status: 404 });
    },
  );

  await app.listen({ port: Number(PORT), host: '127.0.0.1' });
  const stop = async () => {
    await app.close();
    await sql.end({ timeout: 5 });
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.send?.('ready');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
