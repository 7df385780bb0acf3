// Claimed tasks as the work messages of PROTOCOL §5. Pure: the dispatcher publishes what this returns.
import { randomUUID } from 'node:crypto';
import {
  EXCHANGES,
  JSON_CONTENT_TYPE,
  MAX_TASKS_PER_WORK_MESSAGE,
  MAX_WORK_MESSAGE_BYTES,
  PRIORITIES,
  type PublishOptions,
  type WorkMessage,
} from '@task-pipeline/rabbitmq/contract';
import type { ClaimedTask } from './dispatch-repository.js';

export interface OutgoingMessage {
  exchange: string;
  routingKey: string;
  body: Buffer;
  options: PublishOptions;
  /** The claimed tasks it carries, in claim order. */
  tasks: ClaimedTask[];
}

function toWorkMessage(task: ClaimedTask): WorkMessage {
  return {
    taskId: task.id,
    text: task.text,
    priority: task.priority,
    createdAt: task.createdAt.toISOString(),
    attempt: task.attempt,
  };
}

const BATCH_OPEN = '{"tasks":[';
const BATCH_CLOSE = ']}';
const ENVELOPE_BYTES = BATCH_OPEN.length + BATCH_CLOSE.length;

function message(tasks: ClaimedTask[], body: Buffer, messageId: string): OutgoingMessage {
  const { priority } = tasks[0] as ClaimedTask;
  return {
    exchange: EXCHANGES.tasks,
    // The routing key is the priority: the `tasks` exchange binds each one to its work queue.
    routingKey: priority,
    body,
    options: {
      messageId,
      persistent: true,
      mandatory: true,
      contentType: JSON_CONTENT_TYPE,
      // No headers: a first dispatch has no retries (an absent x-retry-count reads as 0), and a header
      // table is the costliest part of encoding a message's properties.
    },
    tasks,
  };
}

/**
 * The work messages of one claim. Up to `perMessage` tasks of one priority share a message, as long
 * as it stays within MAX_WORK_MESSAGE_BYTES; a task alone in its message takes the one-task form,
 * identified by its task id, as every message did before several could share one. A shared message
 * gets an id of its own (a return is charged to the publish by it).
 */
export function buildWorkMessages(tasks: readonly ClaimedTask[], perMessage: number): OutgoingMessage[] {
  const most = Math.min(Math.max(1, perMessage), MAX_TASKS_PER_WORK_MESSAGE);
  const open = new Map<string, { tasks: ClaimedTask[]; parts: string[]; bytes: number }>();
  const out: OutgoingMessage[] = [];
  const close = (group: { tasks: ClaimedTask[]; parts: string[] }) => {
    out.push(
      group.tasks.length === 1
        ? message(group.tasks, Buffer.from(group.parts[0] as string), (group.tasks[0] as ClaimedTask).id)
        : message(
            group.tasks,
            Buffer.from(`${BATCH_OPEN}${group.parts.join(',')}${BATCH_CLOSE}`),
            randomUUID(),
          ),
    );
  };
  for (const task of tasks) {
    const part = JSON.stringify(toWorkMessage(task));
    const bytes = Buffer.byteLength(part);
    let group = open.get(task.priority);
    if (group && group.bytes + 1 + bytes > MAX_WORK_MESSAGE_BYTES) {
      close(group);
      group = undefined;
    }
    if (!group) {
      group = { tasks: [], parts: [], bytes: ENVELOPE_BYTES - 1 };
      open.set(task.priority, group);
    }
    group.tasks.push(task);
    group.parts.push(part);
    group.bytes += 1 + bytes;
    if (group.tasks.length === most) {
      close(group);
      open.delete(task.priority);
    }
  }
  for (const group of open.values()) close(group);
  // Higher priorities first, as claimed: if publishing stops part-way, what is left is the lowest.
  return out.sort((a, b) => rank(a.routingKey) - rank(b.routingKey));
}

const rank = (priority: string) => PRIORITIES.indexOf(priority as (typeof PRIORITIES)[number]);
