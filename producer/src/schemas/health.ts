// Bodies of the health routes. Readiness depends on PostgreSQL answering and on requests moving; the
// broker and the dispatcher are reported for operators (tasks are accepted while the broker is away:
// they wait in the outbox).
import { z } from 'zod';
import { ProblemSchema } from './problem.js';

const RequestFlowSchema = z.object({
  waiting: z.int().describe('Requests waiting for one of the statements in flight'),
  inFlight: z.int().describe('Statements in flight'),
  oldestWaitingMs: z.number(),
  oldestInFlightMs: z.number(),
  timedOut: z.int().describe('Statements that got no answer in time, since start'),
  stalled: z.boolean().describe('Requests are not getting through: readiness fails'),
});

const ReadinessChecksSchema = z.object({
  database: z.enum(['up', 'down']),
  requests: z
    .object({ creates: RequestFlowSchema, reports: RequestFlowSchema })
    .describe('Single creates and status reports, which share statements'),
  broker: z.object({
    connected: z.boolean(),
    blocked: z.boolean().describe('RabbitMQ raised a resource alarm: publishing is paused'),
    ready: z.boolean(),
  }),
  dispatcher: z.record(z.string(), z.unknown()).describe('The dispatcher’s own view (enabled, paused, …)'),
});

export const LiveSchema = z.object({ status: z.literal('ok') });

export const ReadySchema = z
  .object({ status: z.literal('ready'), checks: ReadinessChecksSchema })
  .meta({ id: 'Ready' });

export const NotReadySchema = ProblemSchema.extend({
  checks: ReadinessChecksSchema.optional().describe('Absent when the producer is shutting down'),
}).meta({
  id: 'NotReady',
});
