// What the operator's reads and the bulk redrive work with, as the domain knows it: the HTTP schemas
// (schemas/operator.ts) take their bounds from here and are checked against these types at compile
// time, so the repository never learns the HTTP shape.
import type { Priority } from '@task-pipeline/rabbitmq/contract';
import type { TaskStatus } from './status-transitions.js';
import type { Task } from './task.js';

/** Rows a list page may return. */
export const MAX_LIST_LIMIT = 500;
export const DEFAULT_LIST_LIMIT = 100;
/** Tasks one bulk redrive may change. */
export const MAX_REDRIVE_LIMIT = 1000;
export const DEFAULT_REDRIVE_LIMIT = 100;
/** Tasks examined per status branch of a list page or a redrive selection (see operator-repository). */
export const SCAN_BUDGET = 20_000;
/** A bulk redrive counts its matches up to this many. */
export const MATCH_COUNT_BOUND = 10_000;

export const LIST_ORDERS = ['newest', 'oldest'] as const;
export type ListOrder = (typeof LIST_ORDERS)[number];

/** The filters of the list and of the bulk redrive. Absent: no condition. Times are ISO 8601. */
export interface TaskFilter {
  status?: TaskStatus[] | undefined;
  priority?: Priority[] | undefined;
  createdAfter?: string | undefined;
  createdBefore?: string | undefined;
  /** `sent` tasks whose sent_at is older than this; selects `sent` only. */
  sentBefore?: string | undefined;
  /** Case-insensitive substrings. */
  text?: string | undefined;
  error?: string | undefined;
}

export interface TaskListQuery extends TaskFilter {
  limit: number;
  /** The previous page's nextCursor (opaque). */
  cursor?: string | undefined;
  order: ListOrder;
}

export interface TaskRedriveRecord {
  at: string;
  fromStatus: TaskStatus;
  /** The attempt the redrive ended (it started attempt + 1). */
  attempt: number;
  error: string | null;
  sentAt: string | null;
  finishedAt: string | null;
}

export interface TaskDetail extends Task {
  history: {
    createdAt: string;
    sentAt: string | null;
    finishedAt: string | null;
    updatedAt: string;
    redrives: TaskRedriveRecord[];
  };
}

export interface TaskStats {
  counts: { status: TaskStatus; priority: Priority; count: number }[];
  oldestWaitingAgeS: number | null;
  oldestSentAgeS: number | null;
  staleSent: { olderThanS: number; count: number };
  throughput: { minute: string; created: number; finished: number }[];
  at: string;
}

export interface RedriveTasks extends TaskFilter {
  dryRun: boolean;
  limit: number;
}
