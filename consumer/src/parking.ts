// tasks.parking keeps what can never be processed or reported (unparseable work messages, reports
// the producer answers 400/404), with the reason in `x-park-reason`, for a human. Callers ack the
// original only after this confirmed publish: a crash in between parks it twice, never zero times.
import { randomUUID } from 'node:crypto';
import { HEADERS, QUEUES } from '@task-pipeline/rabbitmq/contract';
import type { Delivery } from './deliveries.js';
import type { Publisher } from './publishing.js';

/** Long enough for a zod issue or a problem detail; short enough for a header. */
const MAX_REASON_LENGTH = 1_000;

/**
 * Parks a delivery with its reason. `content` replaces the body when only part of the message is
 * parked (one report of a result message that carries many).
 */
export function publishParked(
  publisher: Publisher,
  delivery: Delivery,
  reason: string,
  content: Buffer = delivery.message.content,
): Promise<void> {
  const { properties } = delivery.message;
  return publisher.publish('', QUEUES.parking, content, {
    // A garbage message may lack a messageId, and the parts of one message need ids of their own:
    // the publisher matches a basic.return by it.
    messageId:
      typeof properties.messageId === 'string' && content === delivery.message.content
        ? properties.messageId
        : randomUUID(),
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
