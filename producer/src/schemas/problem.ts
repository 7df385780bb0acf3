// RFC 9457 problem details: the body of every error response.
import { z } from 'zod';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export const ProblemSchema = z
  .object({
    type: z.string().describe('URI naming the kind of problem; stable, for programs'),
    title: z.string().describe('Short summary of the kind of problem; for people'),
    status: z.int().describe('The HTTP status code'),
    detail: z.string().describe('What went wrong with this request'),
  })
  .meta({ id: 'Problem' });
export type Problem = z.infer<typeof ProblemSchema>;

/** A documented JSON response (the description is what Swagger UI shows next to the code). */
export function jsonResponse<T extends z.ZodType>(description: string, schema: T) {
  return { description, content: { 'application/json': { schema } } };
}

/** A documented problem+json response for one status code. */
export function problemResponse(description: string) {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: ProblemSchema } } };
}

/**
 * Problems any route can answer with: the HTTP parser's refusals (clientErrorHandler), and the error
 * handler's. A route's own 400 replaces the first one's description.
 */
export const COMMON_PROBLEMS = {
  400: problemResponse('The request is not valid HTTP'),
  408: problemResponse('The request did not arrive in time'),
  431: problemResponse('Request line and headers exceed 16 KiB'),
  500: problemResponse('Unexpected error; details are in the log under the response’s x-request-id'),
  503: problemResponse(
    'PostgreSQL does not answer (in time), too many requests are waiting for it, or the producer is ' +
      'shutting down; retry after Retry-After seconds',
  ),
} as const;

/** Problems of a route that reads a JSON body. */
export const BODY_PROBLEMS = {
  413: problemResponse('Body larger than the route’s limit'),
  415: problemResponse('Content type is not application/json'),
} as const;

/** The operator's read routes: the status token or OPERATOR_READ_TOKEN. */
export const READ_AUTH_PROBLEMS = {
  401: problemResponse(
    'Missing or wrong `Authorization: Bearer <STATUS_API_TOKEN or OPERATOR_READ_TOKEN>`; checked before anything else',
  ),
} as const;

export const AUTH_PROBLEMS = {
  401: problemResponse(
    'Missing or wrong `Authorization: Bearer <STATUS_API_TOKEN>`; checked before anything else',
  ),
  403: problemResponse(
    'OPERATOR_READ_TOKEN may read but not change anything: this route needs STATUS_API_TOKEN',
  ),
} as const;
