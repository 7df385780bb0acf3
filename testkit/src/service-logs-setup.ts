// Vitest global setup: one folder for the logs of every service the run's tests start, removed when
// the run ends, so that test runs leave nothing in the temp folder. Set before the workers start,
// which inherit it; a folder given in TP_SERVICE_LOG_DIR is used and kept.
import { rmSync } from 'node:fs';
import { ownServiceLogDir } from './processes.js';

export default function setup(): () => void {
  const dir = ownServiceLogDir();
  return () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
}
