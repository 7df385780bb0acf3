// Malformed messages on every queue the consumers read (work, retry, results, DLQ) and on the
// parking queue itself. Each must end parked (in tasks.parking, with a reason) or consumed after a
// report, nothing may loop, both services must stay up, and no finished task may change.
import {
  ALL_WORK_QUEUES,
  confirmedPublisher,
  HEADERS,
  JSON_CONTENT_TYPE,
  MAX_TASKS_PER_WORK_MESSAGE,
  QUEUES,
  retryExchangeName,
} from '@task-pipeline/rabbitmq';
import { rabbitmqctl } from '@task-pipeline/testkit/isolation';
import amqp from 'amqplib';

export const FUZZ_LABEL_HEADER = 'x-fuzz-label';

export interface RealTask {
  id: string;
  attempts: number;
  priority: string;
}

export interface MalformedMessage {
  label: string;
  /** The queue it lands in first. */
  queue: string;
  exchange: string;
  routingKey: string;
  content: Buffer;
  contentType: string | undefined;
  headers: Record<string, unknown>;
}

let counter = 0;
const unknownId = () => `00000000-0000-4000-9000-${(++counter).toString(16).padStart(12, '0')}`;

function variants(
  queue: string,
  real: RealTask | undefined,
): { label: string; body: unknown | Buffer; contentType?: string; headers?: Record<string, unknown> }[] {
  const isResults = queue === QUEUES.results;
  const good = (taskId: string, attempt: number): Record<string, unknown> =>
    isResults
      ? { taskId, attempt, status: 'success' }
      : { taskId, text: 'fuzz', priority: 'medium', createdAt: new Date(0).toISOString(), attempt };
  const list: {
    label: string;
    body: unknown | Buffer;
    contentType?: string;
    headers?: Record<string, unknown>;
  }[] = [
    { label: 'not-json', body: Buffer.from('this is not json {') },
    { label: 'wrong-content-type', body: good(unknownId(), 1), contentType: 'text/plain' },
    { label: 'no-content-type', body: good(unknownId(), 1), contentType: '' },
    { label: 'empty-object', body: {} },
    { label: 'array', body: [1, 2, 3] },
    { label: 'invalid-utf8-and-nul', body: Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x00]) },
    { label: 'oversize', body: { ...good(unknownId(), 1), text: 'x'.repeat(70 * 1024) } },
    { label: 'unknown-task', body: good(unknownId(), 1) },
    { label: 'negative-attempt', body: good(unknownId(), -1) },
    { label: 'huge-attempt', body: good(unknownId(), 1e20) },
    { label: 'attempt-as-string', body: { ...good(unknownId(), 1), attempt: '1' } },
    {
      label: 'lone-surrogate',
      body: Buffer.from(`{"taskId":"${unknownId()}","text":"\\ud800","attempt":1}`),
    },
    { label: 'nul-in-text', body: { ...good(unknownId(), 1), text: 'a\u0000b', error: 'e\u0000' } },
    {
      label: 'bad-headers',
      body: good(unknownId(), 1),
      headers: { [HEADERS.retryCount]: 'abc', [HEADERS.death]: 'garbage', [HEADERS.error]: 42 },
    },
    { label: 'status-garbage', body: { ...good(unknownId(), 1), status: 'maybe', priority: 'urgent' } },
  ];
  if (isResults) {
    // The form workers send: many results to a message.
    const result = (taskId: string, attempt: number) => ({ taskId, attempt, status: 'success' });
    list.push(
      { label: 'results-empty', body: { results: [] } },
      { label: 'results-not-a-list', body: { results: 'all done' } },
      { label: 'results-one-bad-item', body: { results: [result(unknownId(), 1), { taskId: 'nope' }] } },
      {
        label: 'results-two-unknown-tasks',
        body: { results: [result(unknownId(), 1), result(unknownId(), 2)] },
      },
      {
        label: 'results-too-many',
        body: { results: Array.from({ length: 1001 }, () => result(unknownId(), 1)) },
      },
    );
    if (real) {
      list.push({
        label: 'results-real-old-attempt-and-unknown',
        body: { results: [result(real.id, Math.max(1, real.attempts - 1)), result(unknownId(), 1)] },
      });
    }
  }
  if (!isResults) {
    // The form a dispatcher sends several tasks in (to a work queue, or dead-lettered as it was).
    const task = (taskId: string, attempt: number) => good(taskId, attempt);
    list.push(
      { label: 'tasks-empty', body: { tasks: [] } },
      { label: 'tasks-not-a-list', body: { tasks: 'all of them' } },
      { label: 'tasks-one-bad-item', body: { tasks: [task(unknownId(), 1), { taskId: 'nope' }] } },
      { label: 'tasks-two-unknown', body: { tasks: [task(unknownId(), 1), task(unknownId(), 2)] } },
      {
        label: 'tasks-two-priorities',
        body: { tasks: [task(unknownId(), 1), { ...task(unknownId(), 1), priority: 'high' }] },
      },
      {
        label: 'tasks-too-many',
        body: { tasks: Array.from({ length: MAX_TASKS_PER_WORK_MESSAGE + 1 }, () => task(unknownId(), 1)) },
      },
    );
    if (real) {
      list.push({
        label: 'tasks-real-old-attempt-and-unknown',
        body: { tasks: [task(real.id, Math.max(1, real.attempts - 1)), task(unknownId(), 1)] },
      });
    }
  }
  if (real) {
    list.push(
      { label: 'real-task-future-attempt', body: good(real.id, real.attempts + 999) },
      {
        label: 'real-task-current-attempt-bad-field',
        body: { ...good(real.id, real.attempts), priority: 'urgent', status: 'maybe' },
      },
      { label: 'real-task-old-attempt', body: good(real.id, Math.max(1, real.attempts - 1)) },
    );
  }
  return list;
}

export function malformedMessages(
  realTasks: readonly RealTask[],
  retryDelaysSeconds: readonly number[],
): MalformedMessage[] {
  const targets: { queue: string; exchange: string; routingKey: string }[] = [
    ...ALL_WORK_QUEUES.map((q) => ({ queue: q, exchange: '', routingKey: q })),
    // Through the retry exchange with a priority as routing key, as the consumer publishes: on expiry
    // the message returns to tasks.medium.
    ...[...new Set(retryDelaysSeconds)].map((d) => ({
      queue: retryExchangeName(d),
      exchange: retryExchangeName(d),
      routingKey: 'medium',
    })),
    { queue: QUEUES.results, exchange: '', routingKey: QUEUES.results },
    { queue: QUEUES.deadLetter, exchange: '', routingKey: QUEUES.deadLetter },
    { queue: QUEUES.parking, exchange: '', routingKey: QUEUES.parking },
  ];
  const out: MalformedMessage[] = [];
  targets.forEach((t, i) => {
    for (const v of variants(t.queue, realTasks[i % Math.max(1, realTasks.length)])) {
      out.push({
        label: v.label,
        queue: t.queue,
        exchange: t.exchange,
        routingKey: t.routingKey,
        content: Buffer.isBuffer(v.body) ? v.body : Buffer.from(JSON.stringify(v.body)),
        contentType: v.contentType === '' ? undefined : (v.contentType ?? JSON_CONTENT_TYPE),
        headers: { ...v.headers, [FUZZ_LABEL_HEADER]: `${t.queue}/${v.label}` },
      });
    }
  });
  return out;
}

export async function publishMalformed(
  amqpUrl: string,
  messages: readonly MalformedMessage[],
): Promise<void> {
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createConfirmChannel();
    const publisher = confirmedPublisher(channel, 10_000);
    await Promise.all(
      messages.map((m, i) =>
        publisher.publish(m.exchange, m.routingKey, m.content, {
          messageId: `fuzz-${i}`,
          persistent: true,
          mandatory: true,
          ...(m.contentType !== undefined ? { contentType: m.contentType } : {}),
          headers: m.headers,
        }),
      ),
    );
  } finally {
    await connection.close().catch(() => undefined);
  }
}

export interface ParkedMessage {
  label: string;
  reason: string;
  from: string;
  /** The parked body: one message may be parked in parts (one report of a result message each). */
  content: string;
}

/** Reads (and removes: the vhost is the run's own) every message in tasks.parking. */
export async function drainParking(amqpUrl: string): Promise<ParkedMessage[]> {
  const connection = await amqp.connect(amqpUrl);
  const out: ParkedMessage[] = [];
  try {
    const channel = await connection.createChannel();
    for (;;) {
      const message = await channel.get(QUEUES.parking, { noAck: true });
      if (message === false) break;
      const headers = message.properties.headers ?? {};
      out.push({
        label: String(headers[FUZZ_LABEL_HEADER] ?? '(no label)'),
        reason: String(headers[HEADERS.parkReason] ?? '(none: published to tasks.parking directly)'),
        from: String(headers[HEADERS.parkedFrom] ?? QUEUES.parking),
        content: message.content.toString('base64'),
      });
    }
  } finally {
    await connection.close().catch(() => undefined);
  }
  return out;
}

/** Messages (ready + unacknowledged) in every queue of a vhost on the shared node. */
export async function queueDepths(vhost: string): Promise<Map<string, number>> {
  const stdout = await rabbitmqctl('list_queues', '-p', vhost, '--no-table-headers', 'name', 'messages');
  const depths = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const [name, count] = line.trim().split(/\s+/);
    if (name && count !== undefined && /^\d+$/.test(count)) depths.set(name, Number(count));
  }
  return depths;
}
