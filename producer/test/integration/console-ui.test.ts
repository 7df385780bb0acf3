// The operator console at /console in a real headless Chromium (Debian's, through playwright-core),
// against a real listening producer on its own database: a wrong token is refused on the page, the
// counts move as tasks are created through the API, the list filters and pages, a task opens with its
// history, failed tasks are redriven from the page (dry run, confirmation) and are waiting again in
// the database, the read-only token shows no redrive, and the page fits a phone's width. Each screen
// is written to .test-results/console/ (git-ignored).
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CONSOLE_CSP } from '../../src/plugins/console.js';
import { launchChromium, type TestBrowser } from '../support/chromium.js';
import { AUTH, startTestProducer, type TaskJson, type TestProducer, TOKEN } from '../support/producer.js';

// The callbacks handed to waitForFunction and evaluate run in the page, where these exist; this file
// is compiled for Node, without the DOM's types.
declare const document: {
  querySelector(
    selector: string,
  ): { textContent: string | null; getAttribute(name: string): string | null } | null;
  querySelectorAll(selector: string): { length: number };
  documentElement: { scrollWidth: number };
  activeElement: { id: string } | null;
};
declare const sessionStorage: { length: number; getItem(key: string): string | null };

const READ_TOKEN = 'test-operator-read-token-0123';
const SHOTS = fileURLToPath(new URL('../../../.test-results/console/', import.meta.url));
/** Long enough for a few stats polls (every 3 s) on a loaded machine. */
const WAIT_MS = 30_000;

let producer: TestProducer;
let browser: TestBrowser;
let page: Page;
const pageErrors: string[] = [];
const consoleErrors: string[] = [];

/** The tasks created for the test, oldest first. */
const resizes: TaskJson[] = [];
const invoices: TaskJson[] = [];

beforeAll(async () => {
  producer = await startTestProducer('console_ui', {
    broker: 'unreachable',
    env: { OPERATOR_READ_TOKEN: READ_TOKEN },
  });
  await mkdir(SHOTS, { recursive: true });
  browser = await launchChromium({ viewport: { width: 1280, height: 900 } });
  page = await browser.context.newPage();
  watch(page);
});
afterAll(async () => {
  await browser?.close();
  await producer?.close();
});

function watch(p: Page): void {
  p.on('pageerror', (err) => pageErrors.push(err.message));
  // A refused request (the wrong token's 401, the read-only token's 403) is logged by Chromium as a
  // failed resource; anything else, a CSP violation above all, is a fault of the page.
  p.on('console', (message) => {
    if (message.type() === 'error' && !/^Failed to load resource/.test(message.text())) {
      consoleErrors.push(message.text());
    }
  });
}

async function createTask(text: string, priority: 'high' | 'medium' | 'low'): Promise<TaskJson> {
  const reply = await producer.http<TaskJson>('POST', '/api/v1/create-task', { json: { text, priority } });
  expect(reply.status).toBe(201);
  return reply.body;
}

/** Waits until the element's text (trimmed) is `expected`, then returns. */
async function waitForText(p: Page, selector: string, expected: string | RegExp): Promise<void> {
  const [source, flags] =
    typeof expected === 'string' ? [null, null] : ([expected.source, expected.flags] as const);
  await p
    .waitForFunction(
      ({ selector, text, source, flags }) => {
        const actual = document.querySelector(selector)?.textContent?.trim() ?? '';
        return source === null ? actual === text : new RegExp(source, flags ?? '').test(actual);
      },
      { selector, text: typeof expected === 'string' ? expected : '', source, flags },
      { timeout: WAIT_MS },
    )
    .catch(async (err: Error) => {
      const actual = await p.locator(selector).first().textContent();
      throw new Error(`${selector}: expected ${String(expected)}, shows ${JSON.stringify(actual)}`, {
        cause: err,
      });
    });
}

/** The task ids of the list's rows, top to bottom, once the list shows `count` rows. */
async function listedIds(p: Page, count: number): Promise<string[]> {
  await p.waitForFunction(
    (n) =>
      document.querySelector('#task-list')?.getAttribute('aria-busy') === null &&
      document.querySelectorAll('#task-list tbody button[data-task-id]').length === n,
    count,
    { timeout: WAIT_MS },
  );
  return p
    .locator('#task-list tbody button[data-task-id]')
    .evaluateAll((buttons) => buttons.map((b) => b.getAttribute('data-task-id') ?? ''));
}

async function search(p: Page, fields: { text?: string; status?: string[]; limit?: string }) {
  await p.locator('#filters button[type="reset"]').click();
  // Fields are found by their labels, as a screen reader announces them.
  if (fields.text !== undefined) await p.getByLabel('Text contains').fill(fields.text);
  for (const status of fields.status ?? []) await p.check(`#filter-status-${status}`);
  if (fields.limit !== undefined) await p.getByLabel('Per page').selectOption(fields.limit);
  // Enter in the search box submits the form: the keyboard path.
  await p.getByLabel('Text contains').press('Enter');
}

const shot = (p: Page, name: string) => p.screenshot({ path: `${SHOTS}${name}.png`, fullPage: true });

describe('the operator console', { timeout: 180_000 }, () => {
  test('is served by the producer with a strict content security policy', async () => {
    const html = await producer.http('GET', '/console');
    expect(html.status).toBe(200);
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(html.text).toContain('<script type="module" src="/console/app.js">');
    const script = await producer.http('GET', '/console/app.js');
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toMatch(/^text\/javascript/);
    // The statuses and priorities the page offers are the producer's own.
    const names = await producer.http('GET', '/console/names.js');
    expect(names.text).toContain('["waiting","sent","success","error"]');
    expect(names.text).toContain('["high","medium","low"]');
    // Nothing else under /console reaches the file system.
    const missing = await producer.http('GET', '/console/..%2fpackage.json');
    expect(missing.status).toBe(404);
    expect(missing.headers['content-type']).toMatch(/^application\/problem\+json/);
    // The page is not an API operation.
    const document = await producer.http<{ paths: Record<string, unknown> }>('GET', '/docs/json');
    expect(Object.keys(document.body.paths).filter((p) => p.startsWith('/console'))).toEqual([]);
  });

  test('a wrong token is refused with the problem the API answered', async () => {
    await page.goto(`${producer.baseUrl}/console`);
    await page.getByLabel('Bearer token').fill('not-the-token-at-all-000');
    await page.getByLabel('Bearer token').press('Enter');
    await waitForText(page, '#sign-in-problem', /^401 Unauthorized/);
    expect(await page.locator('#console').isVisible()).toBe(false);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await shot(page, '1-sign-in-wrong-token');
  });

  test('signs in and the counts move as tasks are created', async () => {
    await page.getByLabel('Bearer token').fill(TOKEN);
    await page.getByLabel('Bearer token').press('Enter');
    await page.locator('#console').waitFor({ state: 'visible', timeout: WAIT_MS });
    await waitForText(page, '#count-waiting-all', '0');
    expect(await page.locator('#redrive').isVisible()).toBe(true);

    for (let i = 1; i <= 12; i += 1) resizes.push(await createTask(`resize image ${i}`, 'high'));
    for (let i = 1; i <= 4; i += 1) invoices.push(await createTask(`send invoice ${i}`, 'low'));

    await waitForText(page, '#count-waiting-high', '12');
    await waitForText(page, '#count-waiting-low', '4');
    await waitForText(page, '#count-waiting-all', '16');
    await waitForText(page, '#count-all-all', '16');
    await waitForText(page, '#created-total', '16');
    await shot(page, '2-overview');
  });

  test('filters the list by text, pages it with the cursor, newest first', async () => {
    // A search the API refuses shows its problem instead of an empty list.
    await search(page, { text: 'x'.repeat(201) });
    await waitForText(page, '#list-problem', /^400 Invalid request: query\/text/);
    await listedIds(page, 0);

    await search(page, { text: 'INVOICE' });
    const found = await listedIds(page, 4);
    expect(found).toEqual(invoices.map((t) => t.taskId).reverse());

    await search(page, { text: 'resize', limit: '10' });
    const newestFirst = resizes.map((t) => t.taskId).reverse();
    expect(await listedIds(page, 10)).toEqual(newestFirst.slice(0, 10));
    expect(await page.locator('#page-previous').isDisabled()).toBe(true);
    await page.click('#page-next');
    expect(await listedIds(page, 2)).toEqual(newestFirst.slice(10));
    await waitForText(page, '#page-number', 'page 2');
    await shot(page, '3-list-page-2');
    await page.click('#page-previous');
    expect(await listedIds(page, 10)).toEqual(newestFirst.slice(0, 10));
  });

  test('opens a task from the keyboard with its detail and history', async () => {
    const newest = resizes.at(-1) as TaskJson;
    await page.locator(`#task-list button[data-task-id="${newest.taskId}"]`).focus();
    await page.keyboard.press('Enter');
    await waitForText(page, '#detail-task-id', newest.taskId);
    await waitForText(page, '#detail-text', newest.text);
    await waitForText(page, '#detail-status', 'waiting');
    const history = await page.locator('#detail-history tbody tr').allInnerTexts();
    expect(history[0]).toMatch(/created/);
    await shot(page, '4-task-detail');
    await page.keyboard.press('Escape');
    await page.locator('#detail').waitFor({ state: 'hidden' });
  });

  test('redrives failed tasks after a dry-run count and a confirmation', async () => {
    const failed = invoices.map((t) => t.taskId);
    for (const taskId of failed) {
      const reply = await producer.http(
        'PUT',
        `/api/v1/update-task-status?taskId=${taskId}&taskStatus=error&error=smtp%20timeout`,
        { headers: AUTH },
      );
      expect(reply.status).toBe(200);
    }
    await waitForText(page, '#count-error-low', '4');

    await search(page, { status: ['error'] });
    expect((await listedIds(page, 4)).sort()).toEqual([...failed].sort());
    // From the keyboard: Enter on the dry run, which hands the focus to the confirmation.
    await page.getByLabel('At most').fill('100');
    await page.getByLabel('At most').press('Enter');
    await waitForText(page, '#redrive-matched', 'Dry run: 4 tasks match.');
    await waitForText(page, '#redrive-go', 'Redrive 4 tasks');
    await shot(page, '5-redrive-confirm');
    // The dry run changed nothing.
    const before = await producer.sql<{ status: string }[]>`
      select status from tasks where id = any(${failed}::uuid[])`;
    expect(before.map((r) => r.status)).toEqual(['error', 'error', 'error', 'error']);

    expect(await page.evaluate(() => document.activeElement?.id)).toBe('redrive-go');
    await page.keyboard.press('Enter');
    await waitForText(page, '#redrive-result', 'Redriven: 4 tasks back to waiting.');
    const after = await producer.sql<{ status: string; attempts: number }[]>`
      select status, attempts from tasks where id = any(${failed}::uuid[])`;
    expect(after).toEqual(Array.from({ length: 4 }, () => ({ status: 'waiting', attempts: 1 })));
    await waitForText(page, '#count-error-all', '0');
    await waitForText(page, '#count-waiting-low', '4');
    await listedIds(page, 0);
    await shot(page, '6-redrive-done');

    // The detail of a redriven task keeps what the redrive reset.
    await search(page, { text: 'send invoice 1' });
    await listedIds(page, 1);
    await page.click(`#task-list button[data-task-id="${failed[0]}"]`);
    await waitForText(page, '#detail-status', 'waiting');
    const history = await page.locator('#detail-history tbody tr').allInnerTexts();
    expect(
      history.some((row) => /redriven\s+from error, attempt 0; error was “smtp timeout”/.test(row)),
    ).toBe(true);
    await page.keyboard.press('Escape');
  });

  test('the read-only toggle hides the redrive', async () => {
    await page.check('#read-only');
    expect(await page.locator('#redrive').isVisible()).toBe(false);
    await page.uncheck('#read-only');
    expect(await page.locator('#redrive').isVisible()).toBe(true);
  });

  test('the read-only token can look but shows no redrive', async () => {
    // A new tab: its sessionStorage holds no token yet.
    const readOnly = await browser.context.newPage();
    watch(readOnly);
    try {
      await readOnly.goto(`${producer.baseUrl}/console`);
      await readOnly.getByLabel('Bearer token').fill(READ_TOKEN);
      await readOnly.getByLabel('Bearer token').press('Enter');
      await readOnly.locator('#console').waitFor({ state: 'visible', timeout: WAIT_MS });
      await waitForText(readOnly, '#count-waiting-all', '16');
      expect(await listedIds(readOnly, 16)).toHaveLength(16);
      expect(await readOnly.locator('#redrive').isVisible()).toBe(false);
      expect(await readOnly.locator('#read-only').isChecked()).toBe(true);
      expect(await readOnly.locator('#read-only').isDisabled()).toBe(true);
      await waitForText(readOnly, '#read-only-notice', 'Read-only: this token can look but not redrive.');
      await shot(readOnly, '7-read-only');

      // The tab keeps the token across a reload (asked once), and signing out forgets it.
      await readOnly.reload();
      await readOnly.locator('#console').waitFor({ state: 'visible', timeout: WAIT_MS });
      expect(await readOnly.locator('#redrive').isVisible()).toBe(false);
      await readOnly.getByRole('button', { name: 'Sign out' }).click();
      await readOnly.locator('#sign-in').waitFor({ state: 'visible' });
      expect(await readOnly.evaluate(() => sessionStorage.getItem('task-pipeline.console.token'))).toBeNull();
    } finally {
      await readOnly.close();
    }
  });

  test("fits a phone's width", async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    await search(page, {});
    await listedIds(page, 16);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(360);
    await shot(page, '8-phone');
    expect(pageErrors).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });
});
