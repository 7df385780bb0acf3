// Redrive end to end with the real dispatcher and broker: a failed task goes out again with the next
// attempt, and a replayed report of the old attempt changes nothing.
import { WORK_QUEUES, type WorkMessage, WorkMessageSchema } from '@task-pipeline/rabbitmq';
import { eventually } from '@task-pipeline/testkit/eventually';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { AUTH, startTestProducer, type TaskJson, type TestProducer } from '../support/producer.js';

let producer: TestProducer;
let connection: ChannelModel;
let channel: Channel;

beforeAll(async () => {
  producer = await startTestProducer('redrive_dispatch', { env: { DISPATCHER_ENABLED: 'true' } });
  await producer.app.broker.waitForConnect();
  connection = await amqp.connect(producer.vhost?.url ?? '');
  channel = await connection.createChannel();
});
afterAll(async () => {
  await connection?.close();
  await producer?.close();
});

async function task(taskId: string): Promise<TaskJson> {
  return (await producer.http<TaskJson>('GET', `/api/v1/get-task-data?taskId=${taskId}`)).body;
}

/** Takes the next work message for the task from its queue (acked: this test is the consumer). */
async function takeMessage(taskId: string): Promise<WorkMessage> {
  return eventually(`a message for ${taskId}`, async () => {
    const message = await channel.get(WORK_QUEUES.low, { noAck: true });
    if (!message) return undefined;
    const body = WorkMessageSchema.parse(JSON.parse(message.content.toString()));
    expect(body.taskId).toBe(taskId);
    return body;
  });
}

test('redrive: dispatched again with attempt + 1; the old attempt’s report is stale', async () => {
  const created = await producer.http<TaskJson>('POST', '/api/v1/create-task', {
    json: { text: 'try twice', priority: 'low' },
  });
  const { taskId } = created.body;

  const first = await takeMessage(taskId);
  expect(first.attempt).toBe(1);
  await eventually('sent', async () => ((await task(taskId)).status === 'sent' ? true : undefined));

  const report = (status: 'success' | 'error', attempt: number) =>
    producer.http<TaskJson>(
      'PUT',
      `/api/v1/update-task-status?taskId=${taskId}&taskStatus=${status}&attempt=${attempt}`,
      { headers: AUTH },
    );
  expect((await report('error', 1)).body.status).toBe('error');

  const redriven = await producer.http<TaskJson>('POST', `/api/v1/redrive-task?taskId=${taskId}`, {
    headers: AUTH,
  });
  expect(redriven.body).toMatchObject({ status: 'waiting', attempts: 2 });

  // The dispatcher claims it again: the claim increments attempts, so the second message says 3.
  const second = await takeMessage(taskId);
  expect(second.attempt).toBe(3);
  const sent = await eventually('sent again', async () => {
    const current = await task(taskId);
    return current.status === 'sent' ? current : undefined;
  });
  expect(sent.attempts).toBe(3);

  // The first message's late report, in either outcome, is stale and changes nothing.
  for (const status of ['success', 'error'] as const) {
    const replay = await report(status, 1);
    expect(replay.body).toMatchObject({ status: 'sent', attempts: 3, stale: true });
  }
  expect((await report('success', 3)).body).toMatchObject({ status: 'success', attempts: 3 });
  expect(await channel.checkQueue(WORK_QUEUES.low)).toMatchObject({ messageCount: 0 });
});
