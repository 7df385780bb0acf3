// Vitest global setup: one folder for the logs of every service the run's tests start, removed when
// the run ends, so that test runs leave nothing in the temp folder.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICE_LOG_DIR_ENV } from './processes.js';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'tp-service-logs-'));
  // Set before the workers start, which inherit it.
  process.env[SERVICE_LOG_DIR_ENV] = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
