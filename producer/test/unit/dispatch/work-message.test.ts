import { randomUUID } from 'node:crypto';
import {
  EXCHANGES,
  JSON_CONTENT_TYPE,
  MAX_TEXT_LENGTH,
  MAX_WORK_MESSAGE_BYTES,
  parseWorkMessage,
} from '@task-pipeline/rabbitmq';
import { describe, expect, test } from 'vitest';
import type { ClaimedTask } from '../../../src/dispatch/dispatch-repository.js';
import { buildWorkMessages } from '../../../src/dispatch/work-message.js';

const claimed = (priority: ClaimedTask['priority'], text = 'x'): ClaimedTask => ({
  id: randomUUID(),
  text,
  priority,
  createdAt: new Date('2025-01-02T03:04:05.678Z'),
  attempt: 1,
});

const ids = (tasks: readonly ClaimedTask[]) => tasks.map((t) => t.id);

/** A task's own work message, as the contract spells it. */
const toJson = (t: ClaimedTask) => ({
  taskId: t.id,
  text: t.text,
  priority: t.priority,
  createdAt: t.createdAt.toISOString(),
  attempt: t.attempt,
});

describe('buildWorkMessages', () => {
  test('one task a message: the contract work message, routed by priority, identified by the task id', () => {
    const task = { ...claimed('high', 'héllo 🌍 "quoted"'), attempt: 3 };
    const [message, ...rest] = buildWorkMessages([task], 1);
    expect(rest).toEqual([]);
    if (!message) throw new Error('no message');
    expect(message.exchange).toBe(EXCHANGES.tasks);
    expect(message.routingKey).toBe('high');
    expect(message.options).toMatchObject({
      messageId: task.id,
      persistent: true,
      mandatory: true,
      contentType: JSON_CONTENT_TYPE,
    });
    expect(JSON.parse(message.body.toString())).toEqual({
      taskId: task.id,
      text: task.text,
      priority: 'high',
      createdAt: '2025-01-02T03:04:05.678Z',
      attempt: 3,
    });
    expect(parseWorkMessage(message.body, message.options.contentType)).toMatchObject({ ok: true });
  });

  test('several a message: tasks of one priority share one, in claim order, with an id of its own', () => {
    const high = [claimed('high'), claimed('high'), claimed('high')];
    const low = [claimed('low')];
    const messages = buildWorkMessages([...high, ...low], 2);
    expect(messages.map((m) => [m.routingKey, ids(m.tasks)])).toEqual([
      ['high', ids(high.slice(0, 2))],
      ['high', ids(high.slice(2))],
      ['low', ids(low)],
    ]);
    const [shared, alone] = messages;
    const parsed = parseWorkMessage(shared?.body ?? Buffer.alloc(0), JSON_CONTENT_TYPE);
    expect(parsed.ok && parsed.value.map((t) => t.taskId)).toEqual(ids(high.slice(0, 2)));
    expect(shared?.options.messageId).not.toBe(high[0]?.id);
    // A task alone keeps the one-task form that every worker version reads.
    expect(JSON.parse(alone?.body.toString() ?? '')).toMatchObject({ taskId: high[2]?.id });
    expect(alone?.options.messageId).toBe(high[2]?.id);
  });

  test('a message never outgrows MAX_WORK_MESSAGE_BYTES: long texts start a new one', () => {
    const long = Array.from({ length: 5 }, () => claimed('medium', 'é'.repeat(MAX_TEXT_LENGTH)));
    const messages = buildWorkMessages(long, 64);
    expect(messages.length).toBeGreaterThan(1);
    expect(messages.flatMap((m) => ids(m.tasks))).toEqual(ids(long));
    for (const m of messages) {
      expect(m.body.length).toBeLessThanOrEqual(MAX_WORK_MESSAGE_BYTES);
      expect(parseWorkMessage(m.body, JSON_CONTENT_TYPE).ok).toBe(true);
    }
  });

  test('the envelope and the commas count: three tasks that fit only without them go out as two messages', () => {
    // Each task's own JSON is a third of the limit, less 4 bytes: 3 of them fit in 64 KiB bare, but
    // not with `{"tasks":[`, `]}` and two commas (14 bytes).
    const sized = (text: string) => claimed('low', text);
    const overhead = Buffer.byteLength(JSON.stringify(toJson(sized(''))));
    const part = Math.floor(MAX_WORK_MESSAGE_BYTES / 3) - 4;
    const tasks = Array.from({ length: 3 }, () => sized('a'.repeat(part - overhead)));
    expect(tasks.map((t) => Buffer.byteLength(JSON.stringify(toJson(t))))).toEqual([part, part, part]);
    const messages = buildWorkMessages(tasks, 3);
    expect(messages.map((m) => m.tasks.length)).toEqual([2, 1]);
    expect(messages[0]?.body.length).toBe(2 * part + 13);
  });
});
