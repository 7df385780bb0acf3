// The naive dispatch loop of seed 002, the baseline of measure 1: one task at a time, each step its
// own statement, a confirm awaited per message. Runs as its own process (like the producer it is
// compared with), tells the parent over IPC when it is connected and begins when told to.
//   env: DATABASE_URL, AMQP_URL
import {
  assertTopology,
  buildTopology,
  confirmedPublisher,
  EXCHANGES,
  JSON_CONTENT_TYPE,
  type WorkMessage,
} from '@task-pipeline/rabbitmq';
import amqp from 'amqplib';
import postgres from 'postgres';

const PRIORITY = 'medium';

async function main(): Promise<void> {
  const { DATABASE_URL, AMQP_URL } = process.env;
  if (!DATABASE_URL || !AMQP_URL) throw new Error('DATABASE_URL and AMQP_URL are required');
  const sql = postgres(DATABASE_URL, { max: 1 });
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createConfirmChannel();
  await assertTopology(channel, buildTopology({ role: 'producer' }));
  const publisher = confirmedPublisher(channel, 5_000);
  let stopping = false;
  const stop = () => {
    stopping = true;
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const started = new Promise<void>((resolve) => process.on('message', (m) => m === 'start' && resolve()));
  process.send?.('ready');
  await started;

  while (!stopping) {
    const [task] = await sql<{ id: string; text: string }[]>`
      select id, text from tasks where status = 'waiting' order by random() limit 1`;
    if (!task) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const message: WorkMessage = {
      taskId: task.id,
      text: task.text,
      priority: PRIORITY,
      createdAt: new Date().toISOString(),
      attempt: 1,
    };
    await publisher.publish(EXCHANGES.tasks, PRIORITY, Buffer.from(JSON.stringify(message)), {
      messageId: task.id,
      contentType: JSON_CONTENT_TYPE,
      persistent: true,
    });
    await sql`update tasks set status = 'sent' where id = ${task.id}`;
  }
  await channel.close().catch(() => undefined);
  await connection.close().catch(() => undefined);
  await sql.end({ timeout: 5 });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
