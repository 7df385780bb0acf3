// `./run.sh --local`: the producer and two consumers as local processes against this machine's
// PostgreSQL and RabbitMQ, configured like the compose stack (shell, then .env, then the services'
// defaults). run.sh installs and builds first; this runs the built dist/ entry points.
// Ctrl-C or SIGTERM stops every service gracefully; a service that dies stops the whole run.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mergeEnv, parseDotEnv, planLocalRun } from './plan.js';
import { checkPortsFree, checkRabbitmq, ensureDatabase, LaunchError, redact } from './preflight.js';
import { killAll, prefixFor, type RunningService, startService, stopAll, waitReady } from './supervisor.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const READY_TIMEOUT_MS = 60_000;

function say(message: string): void {
  process.stdout.write(`launcher | ${message}\n`);
}

async function main(): Promise<number> {
  const dotEnvFile = `${ROOT}.env`;
  const dotEnv = existsSync(dotEnvFile) ? parseDotEnv(readFileSync(dotEnvFile, 'utf8')) : {};
  const env = mergeEnv(process.env, dotEnv);
  if (!env.STATUS_API_TOKEN) {
    throw new LaunchError('TOKEN_MISSING', 'STATUS_API_TOKEN is not set: ./run.sh writes one into .env');
  }
  const plan = planLocalRun(env);

  const running: RunningService[] = [];
  let stopping: Promise<void> | undefined;
  let exitCode = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const stop = (why: string, code: number): void => {
    if (stopping) return;
    exitCode = code;
    say(`${why}: stopping ${running.map((s) => s.plan.name).join(', ') || 'nothing'}`);
    stopping = stopAll(running, plan.stopTimeoutMs).then(finish);
  };
  // A second signal forces the stop, unless it is the first one's echo: timeout(1) and some
  // terminals deliver to the process and to its group, a few milliseconds apart.
  let firstSignalAt = 0;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (!stopping) {
        firstSignalAt = Date.now();
        stop(sig, 0);
      } else if (Date.now() - firstSignalAt > 1000) {
        say(`${sig} again: killing every service`);
        killAll(running);
      }
    });
  }

  try {
    await checkPortsFree(plan.ports);
    say(`PostgreSQL ${redact(plan.databaseUrl)}: database ${await ensureDatabase(plan.databaseUrl)}`);
    await checkRabbitmq(plan.amqpUrl);
    say(`RabbitMQ ${redact(plan.amqpUrl)}: answers`);

    const width = Math.max(...plan.services.map((s) => s.name.length), 'launcher'.length);
    const color = process.stdout.isTTY === true;
    for (const [index, servicePlan] of plan.services.entries()) {
      if (stopping) break;
      const service = startService(servicePlan, ROOT, prefixFor(servicePlan.name, index, width, color));
      running.push(service);
      void service.exited.then(({ code, signal }) =>
        stop(`${servicePlan.name} exited unexpectedly (${code ?? signal})`, 1),
      );
      // The producer creates the schema and must answer before consumers report to it.
      if (servicePlan.role === 'producer') await waitReady(service, READY_TIMEOUT_MS);
    }
    await Promise.all(
      running.filter((s) => s.plan.role === 'consumer').map((s) => waitReady(s, READY_TIMEOUT_MS)),
    );
  } catch (error) {
    stop('start failed', 1);
    await finished;
    // A signal during the start is a normal stop, not a failure to report.
    if (exitCode === 0) return 0;
    throw error;
  }

  if (!stopping) {
    const pids = running.map((s) => `${s.plan.name} ${s.child.pid}`).join(', ');
    say(`ready (${pids})`);
    say(`  API          ${plan.urls.api}`);
    say(`  Swagger UI   ${plan.urls.docs}`);
    say(`  Metrics      ${plan.urls.metrics}`);
    say('  RabbitMQ UI  http://127.0.0.1:15672 when the management plugin is on');
    say('  Try it       npm run tasks -- 100');
    say('Ctrl-C stops everything.');
  }
  await finished;
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`launcher | ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
