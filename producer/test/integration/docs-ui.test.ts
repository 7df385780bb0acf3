// Swagger UI at /docs, rendered by a real headless Chromium (Debian's, driven by playwright-core):
// the page loads the generated OpenAPI document and shows every task endpoint with its codes.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { launchChromium, type TestBrowser } from '../support/chromium.js';
import { startTestProducer, type TestProducer } from '../support/producer.js';

let producer: TestProducer;
let browser: TestBrowser | undefined;

beforeAll(async () => {
  producer = await startTestProducer('docs_ui', { broker: 'unreachable' });
});
afterAll(async () => {
  await browser?.close();
  await producer?.close();
});

test('Swagger UI at /docs lists the task endpoints and their response codes', {
  timeout: 120_000,
}, async () => {
  browser = await launchChromium();
  const page = await browser.context.newPage();
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
