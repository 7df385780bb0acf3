// A claimed task as the work message of PROTOCOL §5. Pure: the dispatcher publishes what this returns.
import {
  EXCHANGES,
  JSON_CONTENT_TYPE,
  type PublishOptions,
  type WorkMessage,
} from '@task-pipeline/rabbitmq/contract';
import type { ClaimedTask } from './dispatch-repository.js';

export interface OutgoingMessage {
  exchange: string;
  routingKey: string;
  body: Buffer;
  options: PublishOptions;
}

export function buildWorkMessage(task: ClaimedTask): OutgoingMessage {
  const message: WorkMessage = {
    taskId: task.id,
    text: task.text,
    priority: task.priority,
    createdAt: task.createdAt.toISOString(),
    attempt: task.attempt,
  };
  return {
    exchange: EXCHANGES.tasks,
    // The routing key is the priority: the `tasks` exchange binds each one to its work queue.
    routingKey: task.priority,
    body: Buffer.from(JSON.stringify(message)),
    options: {
      messageId: task.id,
      persistent: true,
      mandatory: true,
      contentType: JSON_CONTENT_TYPE,
      // No headers: a first dispatch has no retries (an absent x-retry-count reads as 0), and a header
      // table is the costliest part of encoding a message's properties.
    },
  };
}
