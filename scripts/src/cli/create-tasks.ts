// `npm run tasks -- [N] [options]`: what to run right after ./run.sh. Creates N tasks through the
// public API and draws a progress bar until every one is `success` or `error`.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PRIORITIES } from '@task-pipeline/rabbitmq';
import { parseDotEnv } from '../launcher/plan.js';
import { createApiClient } from './api-client.js';
import { renderProgress } from './progress.js';
import { createTasks, type PriorityChoice, watchTasks } from './task-runner.js';

const USAGE = `Usage: npm run tasks -- [N] [--url URL] [--priority high|medium|low|mixed] [--timeout SECONDS]

Creates N tasks (default 100) through the producer's API and waits until each one is success or
error, with a progress bar. Exit status 0 when all finished, 1 on timeout or error.

  --url URL         producer base URL (default http://127.0.0.1:PORT, PORT from the shell or .env, else 3000)
  --priority P      high, medium, low, or mixed (default: mixed, round robin)
  --timeout S       give up after S seconds of watching (default 300)
  --concurrency C   requests in flight (default 16)`;

function defaultUrl(): string {
  const dotEnvFile = fileURLToPath(new URL('../../../.env', import.meta.url));
  const dotEnv = existsSync(dotEnvFile) ? parseDotEnv(readFileSync(dotEnvFile, 'utf8')) : {};
  return `http://127.0.0.1:${process.env.PORT || dotEnv.PORT || 3000}`;
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${value}'`);
  return n;
}

function parse() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      priority: { type: 'string', default: 'mixed' },
      timeout: { type: 'string', default: '300' },
      concurrency: { type: 'string', default: '16' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const priority = values.priority as PriorityChoice;
  if (priority !== 'mixed' && !PRIORITIES.includes(priority)) {
    throw new Error(`--priority must be one of ${[...PRIORITIES, 'mixed'].join(', ')}`);
  }
  if (positionals.length > 1) throw new Error(`one count expected, got: ${positionals.join(' ')}`);
  return {
    help: values.help === true,
    count: positiveInt('N', positionals[0] ?? '100'),
    url: values.url ?? defaultUrl(),
    priority,
    timeoutMs: positiveInt('--timeout', values.timeout) * 1000,
    concurrency: positiveInt('--concurrency', values.concurrency),
  };
}

/** A redrawn line on a terminal; an occasional plain line in logs and pipes. */
function progressWriter(): (line: string, force?: boolean) => void {
  const tty = process.stderr.isTTY === true;
  let lastPrinted = 0;
  let lastLine = '';
  return (line, force = false) => {
    if (tty) {
      process.stderr.write(`\r${line}\u001b[K${force ? '\n' : ''}`);
    } else if ((force && line !== lastLine) || Date.now() - lastPrinted >= 2000) {
      lastPrinted = Date.now();
      lastLine = line;
      process.stderr.write(`${line}\n`);
    }
  };
}

async function main(): Promise<number> {
  let options: ReturnType<typeof parse>;
  try {
    options = parse();
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  const client = createApiClient(options.url, options.concurrency);
  const started = Date.now();
  const write = progressWriter();
  try {
    console.log(`creating ${options.count} tasks (priority ${options.priority}) at ${options.url}`);
    const tasks = await createTasks(client, options.count, {
      priority: options.priority,
      concurrency: options.concurrency,
      onCreated: (n) => write(`created ${n}/${options.count}`, n === options.count),
    });
    const createdMs = Date.now() - started;
    let lastLine: string | undefined;
    const result = await watchTasks(
      client,
      tasks.map((t) => t.taskId),
      {
        timeoutMs: options.timeoutMs,
        concurrency: options.concurrency,
        onProgress: (t) => {
          lastLine = renderProgress(t, Date.now() - started);
          write(lastLine);
        },
      },
    );
    // The final state once more, kept on screen (printed only if the throttle skipped it).
    if (lastLine) write(lastLine, true);
    const elapsed = (Date.now() - started) / 1000;
    const reasons = new Map<string, number>();
    for (const task of result.tasks.values()) {
      if (task.status === 'error')
        reasons.set(task.error ?? 'unknown', (reasons.get(task.error ?? 'unknown') ?? 0) + 1);
    }
    console.log(
      `${result.complete ? 'all finished' : 'timed out'}: ${result.tally.success} success, ${result.tally.error} error ` +
        `of ${options.count} in ${elapsed.toFixed(1)} s (created in ${(createdMs / 1000).toFixed(1)} s, ` +
        `${(options.count / elapsed).toFixed(0)} tasks/s end to end)`,
    );
    for (const [reason, n] of [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 5))
      console.log(`  error ${n}× ${reason}`);
    return result.complete ? 0 : 1;
  } catch (error) {
    console.error(`\n${(error as Error).message}`);
    return 1;
  } finally {
    await client.close();
  }
}

process.exitCode = await main();
