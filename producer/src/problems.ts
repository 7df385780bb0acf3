// Errors that become problem+json responses (RFC 9457). Routes throw them; the error handler answers.
import type { Problem } from './schemas/problem.js';

const TYPE_PREFIX = 'urn:task-pipeline:problem:';

/** Every kind of problem the producer answers with: the `type` URI and its `title`. */
export const PROBLEMS = {
  invalidRequest: { status: 400, slug: 'invalid-request', title: 'Invalid request' },
  unauthorized: { status: 401, slug: 'unauthorized', title: 'Unauthorized' },
  forbidden: { status: 403, slug: 'forbidden', title: 'Forbidden' },
  notFound: { status: 404, slug: 'not-found', title: 'Not found' },
  methodNotAllowed: { status: 405, slug: 'method-not-allowed', title: 'Method not allowed' },
  statusConflict: { status: 409, slug: 'status-conflict', title: 'Status change refused' },
  payloadTooLarge: { status: 413, slug: 'payload-too-large', title: 'Payload too large' },
  unsupportedMediaType: { status: 415, slug: 'unsupported-media-type', title: 'Unsupported media type' },
  idempotencyKeyReused: {
    status: 422,
    slug: 'idempotency-key-reused',
    title: 'Idempotency-Key reused with another body',
  },
  internal: { status: 500, slug: 'internal', title: 'Internal server error' },
  unavailable: { status: 503, slug: 'unavailable', title: 'Service unavailable' },
} as const;
export type ProblemKind = keyof typeof PROBLEMS;

export function problem(kind: ProblemKind, detail: string): Problem {
  const { status, slug, title } = PROBLEMS[kind];
  return { type: `${TYPE_PREFIX}${slug}`, title, status, detail };
}

export class ProblemError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly problem: Problem;

  constructor(kind: ProblemKind, detail: string, options?: { cause?: unknown }) {
    super(detail, options);
    this.problem = problem(kind, detail);
    this.statusCode = this.problem.status;
    this.code = `PROBLEM_${PROBLEMS[kind].slug.toUpperCase().replaceAll('-', '_')}`;
  }
}

/** One readable line from validation issues: `body/text: must be …; query/taskId: Invalid UUID`. */
export function describeIssues(issues: readonly { path: string; message: string }[]): string {
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
}
