// The claim statement (CONTRACT §6.1), built without I/O so its shape is unit-tested and its plan
// checked by EXPLAIN. One branch per priority (and per half of the random wrap) keeps every branch a
// plain range scan of a partial index in index order: no sort of the backlog, however large, and the
// outer LIMIT stops pulling branches as soon as the batch is full (CTEs are evaluated on demand).
import { PRIORITIES, type Priority } from '@task-pipeline/rabbitmq';

export type DispatchOrder = 'random' | 'fifo';

export interface ClaimPlanInput {
  order: DispatchOrder;
  limit: number;
  leaseSeconds: number;
  /**
   * Where the random order starts this time: a random v4 UUID (ignored for fifo). Task ids are v4 too,
   * so the start is uniform over the same space and every waiting task is equally likely to be next.
   */
  startId: string;
}

export interface ClaimPlan {
  text: string;
  params: (string | number)[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Branch {
  priority: Priority;
  /** Extra condition on the index's second column, with its ORDER BY. */
  range: string;
  orderBy: 'id' | 'created_at';
}

function branches(order: DispatchOrder): Branch[] {
  return PRIORITIES.flatMap((priority): Branch[] =>
    order === 'fifo'
      ? [{ priority, range: '', orderBy: 'created_at' }]
      : [
          { priority, range: 'AND id >= $3::uuid', orderBy: 'id' },
          { priority, range: 'AND id < $3::uuid', orderBy: 'id' },
        ],
  );
}

/**
 * Claims up to `limit` waiting tasks whose lease is free or expired: high priority first, then from
 * `startId` upward and wrapping (random), or oldest first (fifo). Every claimed row gets a lease and
 * its next attempt number in the same statement; locked rows are skipped, so dispatchers never queue
 * behind each other. Parameters: $1 limit, $2 lease seconds, $3 start id (random only).
 */
export function buildClaimPlan(input: ClaimPlanInput): ClaimPlan {
  if (!Number.isInteger(input.limit) || input.limit < 1)
    throw new RangeError('limit must be a positive integer');
  if (!(input.leaseSeconds > 0)) throw new RangeError('leaseSeconds must be positive');
  const parts = branches(input.order);
  // Priorities come from the contract constant, never from input: safe to inline, and a literal lets
  // the planner match the partial index's leading column in a generic (prepared) plan too.
  const ctes = parts.map(
    (b, i) => `b${i} AS (
    SELECT id FROM tasks
    WHERE status = 'waiting' AND priority = '${b.priority}' ${b.range}
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY ${b.orderBy}
    LIMIT $1
    FOR UPDATE SKIP LOCKED
  )`,
  );
  const union = parts.map((_, i) => `(SELECT id FROM b${i})`).join(' UNION ALL ');
  const text = `WITH ${ctes.join(',\n  ')},
  picked AS (${union} LIMIT $1)
UPDATE tasks t
SET attempts = t.attempts + 1,
    claimed_until = now() + make_interval(secs => $2),
    updated_at = now()
FROM picked
WHERE t.id = picked.id
RETURNING t.id, t.text, t.priority, t.created_at, t.attempts`;
  const params: (string | number)[] = [input.limit, input.leaseSeconds];
  if (input.order === 'random') {
    if (!UUID.test(input.startId)) throw new RangeError('startId must be a UUID');
    params.push(input.startId);
  }
  return { text, params };
}

export interface ClaimOrderKey {
  priority: Priority;
  id: string;
  createdAt: Date;
}

const PRIORITY_RANK = new Map<Priority, number>(PRIORITIES.map((p, i) => [p, i]));

/**
 * The order the claim's scans visited the rows in. UPDATE … RETURNING gives them back in the join's
 * order (often physical, i.e. creation order), so the dispatcher re-sorts before publishing.
 * Lower-case UUID strings compare like PostgreSQL's uuid ordering.
 */
export function claimOrderComparator(
  order: DispatchOrder,
  startId: string,
): (a: ClaimOrderKey, b: ClaimOrderKey) => number {
  const start = startId.toLowerCase();
  return (a, b) => {
    const byPriority = (PRIORITY_RANK.get(a.priority) ?? 0) - (PRIORITY_RANK.get(b.priority) ?? 0);
    if (byPriority !== 0) return byPriority;
    if (order === 'fifo') return a.createdAt.getTime() - b.createdAt.getTime();
    const wrapA = a.id < start ? 1 : 0;
    const wrapB = b.id < start ? 1 : 0;
    if (wrapA !== wrapB) return wrapA - wrapB;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  };
}
