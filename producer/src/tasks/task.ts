// The task as the domain knows it: what the repository returns and the status rule judges. The HTTP
// schemas (schemas/tasks.ts) are checked against these types, so the API cannot drift from the domain
// without a type error, and the domain never learns the HTTP shape.
import type { Priority, ResultStatus } from '@task-pipeline/rabbitmq/contract';
import type { TaskStatus } from './status-transitions.js';

export interface Task {
  taskId: string;
  text: string;
  priority: Priority;
  status: TaskStatus;
  /** Dispatch number: incremented by every claim and every redrive. */
  attempts: number;
  error: string | null;
  /** ISO 8601 timestamps, as stored. */
  createdAt: string;
  updatedAt: string;
  sentAt: string | null;
  finishedAt: string | null;
}

/** A report of a task's result (PROTOCOL §3): for its current attempt unless `attempt` names one. */
export interface StatusUpdate {
  taskId: string;
  taskStatus: ResultStatus;
  attempt?: number | undefined;
  error?: string | undefined;
}
