// Swagger UI at /docs, rendered by a real headless Chromium (Debian's, driven by playwright-core):
// the page loads the generated OpenAPI document and shows every task endpoint with its codes.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startTestProducer, type TestProducer } from '../support/producer.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let producer: TestProducer;
let profile: string;
let browser: BrowserContext | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does it when root)`,
    );
  }
  producer = await startTestProducer('docs_ui', { broker: 'unreachable' });
  profile = await mkdtemp(join(tmpdir(), 'tp-chromium-'));
});
afterAll(async () => {
  await browser?.close();
  await producer?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
});

test('Swagger UI at /docs lists the task endpoints and their response codes', {
  timeout: 120_000,
}, async () => {
  // A persistent context on a fresh directory is Playwright's way to pass a fresh --user-data-dir.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
  const page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));

  await page.goto(`${producer.baseUrl}/docs`);
  await page.locator('.opblock-summary-path').first().waitFor({ timeout: 60_000 });
  const paths = await page.locator('.opblock-summary-path').allInnerTexts();
  const normalized = paths.map((p) => p.replace(/\u200b/g, '').trim());
  expect(normalized).toEqual(
    expect.arrayContaining([
      '/api/v1/create-task',
      '/api/v1/get-task-data',
      '/api/v1/update-task-status',
      '/api/v1/update-task-statuses',
      '/api/v1/redrive-task',
      '/health/live',
      '/health/ready',
    ]),
  );
  expect(await page.locator('.info .title').textContent()).toContain('Task pipeline producer');

  // Expanding create-task shows every documented response code, 422 included.
  await page.locator('.opblock-post', { hasText: '/api/v1/create-task' }).locator('.opblock-summary').click();
  const codes = page.locator('.opblock-post.is-open .responses-table .response-col_status');
  await codes.first().waitFor();
  const shown = (await codes.allInnerTexts()).map((c) => c.trim());
  expect(shown).toEqual(expect.arrayContaining(['200', '201', '400', '413', '415', '422', '500', '503']));
  expect(pageErrors).toEqual([]);
});
