// Client-side deadlines for statements. A restarting PostgreSQL can leave a postgres.js query pending
// forever (RELIABILITY.md): its connection is gone and no error ever arrives. A server-side
// statement_timeout cannot end that, because the server never sees the statement or its answer never
// arrives; only the client can give up on it.
import type { PendingQuery, Row } from 'postgres';

/** A postgres.js query: a promise that can be cancelled. */
export type CancellableQuery<T> = Promise<T> & Pick<PendingQuery<Row[]>, 'cancel'>;

/** A statement that got no answer within its deadline (and was cancelled). */
export class StatementDeadlineError extends Error {
  readonly code = 'STATEMENT_DEADLINE';

  constructor(statement: string, deadlineMs: number) {
    super(`${statement} got no answer within ${deadlineMs} ms; cancelled it`);
    this.name = 'StatementDeadlineError';
  }
}

/**
 * Rejects when `query` has not answered within `deadlineMs`, or as soon as `signal` aborts (with its
 * reason), and cancels the query either way. The rejection does not wait for the cancel: postgres.js
 * cancels a running query through a new connection (a CancelRequest, which also frees the server's
 * statement and its locks), one still queued for a connection at once, and one pipelined behind a
 * stuck query only when it comes up, which may be never.
 */
export function withDeadline<T>(
  statement: string,
  deadlineMs: number,
  query: CancellableQuery<T>,
  signal?: AbortSignal,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const cut = new Promise<never>((_, reject) => {
    const giveUp = (reason: unknown) => {
      // Typed void, but returns the cancel request's promise, which rejects when no connection for it
      // can be opened.
      Promise.resolve<unknown>(query.cancel()).catch(() => undefined);
      reject(reason);
    };
    timer = setTimeout(() => giveUp(new StatementDeadlineError(statement, deadlineMs)), deadlineMs);
    timer.unref();
    if (signal?.aborted) giveUp(signal.reason);
    else if (signal) {
      onAbort = () => giveUp(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  return Promise.race([query, cut]).finally(() => {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  });
}

/**
 * PostgreSQL's own timeouts (statement_timeout, lock_timeout; 57014 is also an explicit cancel) and
 * a client-side deadline: the database did not answer in time, and the request may succeed later.
 */
const TIMEOUT_CODES: ReadonlySet<string> = new Set(['STATEMENT_DEADLINE', '57014', '55P03']);

export function isDatabaseTimeout(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TIMEOUT_CODES.has(code);
}
