// The operator console at /console: a handful of static files (HTML, CSS, plain ES modules) from
// producer/console/, served by the producer itself, so the page needs no separate server, no CDN and
// no build step. It calls the operator API with the bearer token the person types in; the files
// themselves are public (they hold no data).
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { PRIORITIES } from '@task-pipeline/rabbitmq';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { TASK_STATUSES } from '../tasks/status-transitions.js';

export const CONSOLE_PREFIX = '/console';

/** producer/console/, from src/plugins (tests, tsx) and from dist/plugins (the build) alike. */
export const CONSOLE_DIR = new URL('../../console/', import.meta.url);

/**
 * The files served, named one by one: a fixed list cannot be walked out of (no path from the request
 * ever reaches the file system) and a missing file stops the start instead of answering 404 later.
 */
export const CONSOLE_FILES = ['index.html', 'console.css', 'app.js', 'api.js', 'chart.js', 'dom.js'] as const;

/**
 * `/console/names.js`, written from the producer's own lists: the page's filters and count table
 * use the very statuses and priorities the API validates, with no copy to drift.
 */
export const NAMES_MODULE =
  '// Written by the producer from its own lists (producer/src/plugins/console.ts).\n' +
  `export const STATUSES = ${JSON.stringify(TASK_STATUSES)};\n` +
  `export const PRIORITIES = ${JSON.stringify(PRIORITIES)};\n`;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
};

/**
 * Only the page's own files may load and only the producer may be called: an injected string can run
 * no script and send nothing elsewhere. No inline script or style (element.style through the CSSOM is
 * not covered by style-src), no frames (clickjacking of the redrive button), no forms posting away.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // Assets change with every release and are small: revalidate rather than run a stale page.
  'cache-control': 'no-cache',
} as const;

async function consolePlugin(app: FastifyInstance): Promise<void> {
  const files: { name: string; body: Buffer; type: string }[] = await Promise.all(
    CONSOLE_FILES.map(async (name) => {
      const body = await readFile(new URL(name, CONSOLE_DIR));
      const type = CONTENT_TYPES[extname(name)];
      if (type === undefined) throw new Error(`console file ${name} has no content type`);
      return { name, body, type };
    }),
  );
  files.push({ name: 'names.js', body: Buffer.from(NAMES_MODULE), type: CONTENT_TYPES['.js'] as string });
  for (const { name, body, type } of files) {
    const paths =
      name === 'index.html' ? [CONSOLE_PREFIX, `${CONSOLE_PREFIX}/`] : [`${CONSOLE_PREFIX}/${name}`];
    for (const url of paths) {
      // hide: the page is not part of the API, so the OpenAPI document does not list it.
      app.get(url, { schema: { hide: true } }, async (_request, reply) =>
        reply.headers(SECURITY_HEADERS).type(type).send(body),
      );
    }
  }
}

export default fp(consolePlugin, { name: 'console', fastify: '5.x' });
