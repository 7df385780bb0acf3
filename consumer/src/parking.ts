// tasks.parking keeps what can never be processed or reported (unparseable work messages, reports
// the producer answers 400/404), with the reason in `x-park-reason`, for a human. Callers ack the
// original only after this confirmed publish: a crash in between parks it twice, never zero times.
import { randomUUID } from 'node:crypto';
import { HEADERS, QUEUES } from '@task-pipeline/rabbitmq';
import type { Delivery } from './deliveries.js';
import type { Publisher } from './publishing.js';

/** Long enough for a zod issue or a problem detail; short enough for a header. */
const MAX_REASON_LENGTH = 1_000;

export function publishParked(publisher: Publisher, delivery: Delivery, reason: string): Promise<void> {
  const { properties, content } = delivery.message;
  return publisher.publish('', QUEUES.parking, content, {
    // A garbage message may lack a messageId; the publisher needs one to match a basic.return.
    messageId: typeof properties.messageId === 'string' ? properties.messageId : randomUUID(),
    contentType: properties.contentType,
    contentEncoding: properties.contentEncoding,
    timestamp: properties.timestamp,
    type: properties.type,
    headers: {
      ...properties.headers,
      [HEADERS.parkReason]: reason.slice(0, MAX_REASON_LENGTH),
      [HEADERS.parkedFrom]: delivery.queue,
    },
  });
}
