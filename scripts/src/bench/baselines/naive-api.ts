// The naive API of measure 3: a minimal Fastify app with the same two routes, each one plain
// statement per request on the same tasks table (no coalescing, no auth, no request log). Runs as
// its own process like the producer and tells the parent over IPC when it listens.
//   env: DATABASE_URL, PORT
import Fastify from 'fastify';
import postgres from 'postgres';

async function main(): Promise<void> {
  const { DATABASE_URL, PORT } = process.env;
  if (!DATABASE_URL || !PORT) throw new Error('DATABASE_URL and PORT are required');
  const sql = postgres(DATABASE_URL, { max: 10 });
  const app = Fastify({ logger: false });

  app.post<{ Body: { text: string; priority?: 'high' | 'medium' | 'low' } }>(
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
    async (request, reply) => {
      const [task] = await sql`
        insert into tasks (id, text, priority)
        values (gen_random_uuid(), ${request.body.text}, ${request.body.priority ?? 'medium'})
        returning *`;
      return reply.code(201).send(task);
    },
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
      const [task] = await sql`
        update tasks set status = ${request.body.taskStatus}, finished_at = now(), updated_at = now()
        where id = ${request.body.taskId}
        returning *`;
      return task ? task : reply.code(404).send({ status: 404 });
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
