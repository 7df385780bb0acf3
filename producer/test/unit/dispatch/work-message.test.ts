import { randomUUID } from 'node:crypto';
import { EXCHANGES, JSON_CONTENT_TYPE, parseMessage, WorkMessageSchema } from '@task-pipeline/rabbitmq';
import { describe, expect, test } from 'vitest';
import { buildWorkMessage } from '../../../src/dispatch/work-message.js';

describe('buildWorkMessage', () => {
  test('is the contract work message, routed by priority, identified by the task id', () => {
    const task = {
      id: randomUUID(),
      text: 'héllo 🌍 "quoted"',
      priority: 'high' as const,
      createdAt: new Date('2025-01-02T03:04:05.678Z'),
      attempt: 3,
    };
    const message = buildWorkMessage(task);
    expect(message.exchange).toBe(EXCHANGES.tasks);
    expect(message.routingKey).toBe('high');
    expect(message.options).toMatchObject({
      messageId: task.id,
      persistent: true,
      mandatory: true,
      contentType: JSON_CONTENT_TYPE,
    });
    const parsed = parseMessage(WorkMessageSchema, message.body, message.options.contentType);
    expect(parsed).toEqual({
      ok: true,
      value: {
        taskId: task.id,
        text: task.text,
        priority: 'high',
        createdAt: '2025-01-02T03:04:05.678Z',
        attempt: 3,
      },
    });
  });
});
