// The raw publisher's message: a work message of the seeded task text, with the properties the
// dispatcher publishes (producer/src/dispatch/work-message.ts), so the broker carries the same bytes.
import { randomUUID } from 'node:crypto';
import {
  EXCHANGES,
  HEADERS,
  JSON_CONTENT_TYPE,
  type PublishOptions,
  type WorkMessage,
} from '@task-pipeline/rabbitmq';
import { BENCH_TEXT } from '../plan.js';

const PRIORITY = 'medium';

export const RAW_EXCHANGE = EXCHANGES.tasks;
/** The routing key is the priority: the tasks exchange binds `medium` to tasks.medium. */
export const RAW_ROUTING_KEY = PRIORITY;

export function rawWorkMessage(sequence: number): { body: Buffer; options: PublishOptions } {
  const taskId = randomUUID();
  const message: WorkMessage = {
    taskId,
    text: `${BENCH_TEXT} #${sequence}`,
    priority: PRIORITY,
    createdAt: new Date().toISOString(),
    attempt: 1,
  };
  return {
    body: Buffer.from(JSON.stringify(message)),
    options: {
      messageId: taskId,
      persistent: true,
      mandatory: true,
      contentType: JSON_CONTENT_TYPE,
      headers: { [HEADERS.retryCount]: 0 },
    },
  };
}
