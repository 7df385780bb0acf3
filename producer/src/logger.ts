// The producer's pino logger: JSON lines, or pino-pretty when a person watches a terminal and the
// (dev-only) package is installed. Built images run without it and log JSON.
import pino, { type Logger } from 'pino';
import type { ProducerConfig } from './config.js';

function prettyAvailable(): boolean {
  try {
    import.meta.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

export function createLogger(level: ProducerConfig['logLevel']): Logger {
  const pretty = process.stdout.isTTY === true && prettyAvailable();
  return pino({
    level,
    base: { service: 'producer' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  });
}
