// The operator API as the console calls it: the bearer token from this tab's sessionStorage (never a
// cookie, so there is no ambient credential for another site to ride on), JSON in and out, and every
// failure turned into an ApiError carrying the problem+json the producer answered.

const TOKEN_KEY = 'task-pipeline.console.token';

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** A failed call: `status` 0 when the producer did not answer at all. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title);
    this.status = status;
    this.problem = problem;
  }

  /** One line for a person: `401 Unauthorized: the bearer token is missing or wrong`. */
  describe() {
    const { title, detail } = this.problem;
    const head = this.status ? `${this.status} ${title ?? ''}`.trim() : title;
    return detail && detail !== title ? `${head}: ${detail}` : head;
  }
}

/** Query parameters from an object: arrays comma-separated, empty values left out. */
export function toQuery(params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) {
      if (value.length > 0) query.set(name, value.join(','));
    } else {
      query.set(name, String(value));
    }
  }
  const text = query.toString();
  return text ? `?${text}` : '';
}

/** One call; `token` defaults to the session's. Resolves to the parsed JSON body. */
export async function call(method, path, { body, token = session.token } = {}) {
  const headers = { accept: 'application/json, application/problem+json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, { title: 'No answer', detail: `the producer did not answer (${err.message})` });
  }
  const text = await response.text();
  let data = null;
  if (/json/.test(response.headers.get('content-type') ?? '') && text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const problem =
      data && typeof data === 'object'
        ? data
        : { title: response.statusText || 'Error', detail: text.slice(0, 300) };
    throw new ApiError(response.status, problem);
  }
  if (data === null) {
    throw new ApiError(response.status, {
      title: 'Unexpected answer',
      detail: `${method} ${path} sent no JSON`,
    });
  }
  return data;
}
