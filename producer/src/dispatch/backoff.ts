// The dispatcher's backoff policies (the rule itself is @task-pipeline/common's backoffMs).
import type { BackoffPolicy } from '@task-pipeline/common';

/** After a failed publish the task's lease is pushed out by this much (PROTOCOL §6.3: no hot loop). */
export const PUBLISH_FAILURE_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 30_000 };
/** Between attempts to reach PostgreSQL after a claim or record failed. */
export const DATABASE_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 5_000 };
