// The auto-ack sink that drains the work queues while a dispatcher is measured: it takes every message
// as fast as the broker pushes it and only counts the tasks it carries (one, or several when tasks
// share a message), so neither the queue nor a consumer limits the publisher. It asserts the
// producer's topology first, so whichever publisher runs finds its queues.
import { ALL_WORK_QUEUES, assertTopology, buildTopology, readTaskReferences } from '@task-pipeline/rabbitmq';
import amqp from 'amqplib';

export interface Sink {
  /** Tasks received so far. */
  readonly count: number;
  /** ms timestamps of the first and the latest delivery (undefined before the first). */
  readonly firstAt: number | undefined;
  readonly lastAt: number | undefined;
  /** Distinct task ids seen: a duplicate publish shows as count > unique. */
  readonly unique: number;
  close(): Promise<void>;
}

/** How a work message of several tasks starts (PROTOCOL §5, as the dispatcher writes it). */
const SEVERAL = Buffer.from('{"tasks":');

export async function startSink(amqpUrl: string): Promise<Sink> {
  const connection = await amqp.connect(amqpUrl, { clientProperties: { connection_name: 'bench-sink' } });
  const channel = await connection.createChannel();
  await assertTopology(channel, buildTopology({ role: 'producer' }));
  const ids = new Set<string>();
  const state = {
    count: 0,
    firstAt: undefined as number | undefined,
    lastAt: undefined as number | undefined,
  };
  for (const queue of ALL_WORK_QUEUES) {
    await channel.consume(
      queue,
      (message) => {
        if (!message) return;
        const now = Date.now();
        state.firstAt ??= now;
        state.lastAt = now;
        // The sink shares the cores with what it measures: a one-task message (messageId = taskId)
        // is counted unread; only a message of several is parsed for its tasks.
        const { messageId } = message.properties;
        if (!message.content.subarray(0, SEVERAL.length).equals(SEVERAL) && typeof messageId === 'string') {
          state.count += 1;
          ids.add(messageId);
          return;
        }
        const tasks = readTaskReferences(message.content).references;
        state.count += tasks.length;
        for (const task of tasks) ids.add(task.taskId);
      },
      { noAck: true },
    );
  }
  return {
    get count() {
      return state.count;
    },
    get firstAt() {
      return state.firstAt;
    },
    get lastAt() {
      return state.lastAt;
    },
    get unique() {
      return ids.size;
    },
    async close() {
      await channel.close().catch(() => undefined);
      await connection.close().catch(() => undefined);
    },
  };
}
