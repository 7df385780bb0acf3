// The messaging contract without the client library: broker URL lists, exchange and queue names, queue arguments, the
// topology as data, message schemas, and the broker's reconnect backoff. Pure modules of both services
// import this entry point (`@task-pipeline/rabbitmq/contract`), never the package root, which also
// carries the connection and the publisher and so loads amqplib. Type-only re-exports load nothing.
import type { BackoffPolicy } from '@task-pipeline/common';

export * from './brokers.js';
export * from './messages.js';
export type { PublishErrorCode, PublishOptions } from './publisher.js';
export * from './topology.js';

/** How often a managed channel that closed is reopened (the rule: @task-pipeline/common's backoffMs). */
export const RECONNECT_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 5_000 };
