import { ALL_WORK_QUEUES, QUEUES, retryExchangeName } from '@task-pipeline/rabbitmq';
import { describe, expect, it } from 'vitest';
import { FUZZ_LABEL_HEADER, malformedMessages } from '../../../src/fuzz/amqp-fuzz.js';

describe('malformedMessages', () => {
  const real = [{ id: '11111111-1111-4111-8111-111111111111', attempts: 2, priority: 'high' }];
  const messages = malformedMessages(real, [1, 5]);

  it('targets every queue a consumer reads, the retry exchanges and the parking queue', () => {
    const queues = new Set(messages.map((m) => m.queue));
    for (const q of [...ALL_WORK_QUEUES, QUEUES.results, QUEUES.deadLetter, QUEUES.parking])
      expect(queues).toContain(q);
    expect(queues).toContain(retryExchangeName(1));
    expect(queues).toContain(retryExchangeName(5));
  });

  it('labels every message uniquely so its fate can be traced', () => {
    const labels = messages.map((m) => m.headers[FUZZ_LABEL_HEADER]);
    expect(new Set(labels).size).toBe(messages.length);
  });

  it('includes unparseable, oversize and real-task messages', () => {
    const kinds = new Set(messages.map((m) => m.label));
    for (const k of ['not-json', 'oversize', 'invalid-utf8-and-nul', 'real-task-future-attempt'])
      expect(kinds).toContain(k);
    for (const k of ['tasks-one-bad-item', 'tasks-too-many', 'tasks-real-old-attempt-and-unknown'])
      expect(kinds).toContain(k);
    expect(messages.find((m) => m.label === 'oversize')?.content.length).toBeGreaterThan(64 * 1024);
  });
});
