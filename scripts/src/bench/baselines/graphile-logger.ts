// graphile-worker logs every start and stop at info; the benchmark shows only its errors.
import { Logger } from 'graphile-worker';

export const quietGraphileLogger = new Logger((scope) => (level, message) => {
  if (level === 'error') console.error(`graphile-worker ${JSON.stringify(scope)}: ${message}`);
});
