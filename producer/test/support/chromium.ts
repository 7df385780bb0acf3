// Debian's Chromium driven by playwright-core, for the tests of the pages the producer serves
// (Swagger UI, the operator console). scripts/test.sh installs the package when it is missing.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** A headless Chromium on a fresh profile directory, removed again by `close`. */
export async function launchChromium(options: { viewport?: { width: number; height: number } } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does it when root)`,
    );
  }
  const profile = await mkdtemp(join(tmpdir(), 'tp-chromium-'));
  try {
    // A persistent context on a fresh directory is Playwright's way to pass a fresh --user-data-dir.
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      ...(options.viewport ? { viewport: options.viewport } : {}),
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
    return {
      context,
      async close() {
        await context.close();
        await rm(profile, { recursive: true, force: true });
      },
    } satisfies TestBrowser;
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
}
