// `npm run fuzz`: generated HTTP requests against every route, raw bytes on every listening port of
// both services, then malformed AMQP messages on every queue. Prints counts by status and every
// finding; exits 1 on any 5xx, unanswered request, service exit, leak or change.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runFuzz } from './run.js';

const USAGE = `npm run fuzz -- [--requests N] [--raw N] [--seed S] [--no-amqp] [--json FILE]
  --requests N   generated HTTP requests (default 10000)
  --raw N        generated raw-byte requests over both services' ports (default 5000)
  --seed S       fast-check seed (default: random, printed)
  --no-amqp      skip the malformed-message phase
  --json FILE    also write the full report as JSON`;

async function main(): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      options: {
        requests: { type: 'string' },
        raw: { type: 'string' },
        seed: { type: 'string' },
        'no-amqp': { type: 'boolean' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const requests = Number(values.requests ?? 10_000);
  const raw = Number(values.raw ?? 5_000);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (![requests, raw].every((n) => Number.isInteger(n) && n > 0) || !Number.isInteger(seed)) {
    console.error(`--requests, --raw and --seed must be integers\n\n${USAGE}`);
    return 2;
  }
  const report = await runFuzz({ requests, raw, seed, amqp: values['no-amqp'] !== true, logLevel: 'warn' });
  const { http, amqp } = report;
  console.log(`\nHTTP: ${http.requests} requests in ${(http.elapsedMs / 1000).toFixed(1)} s (seed ${seed})`);
  console.log(`  by status   ${JSON.stringify(http.byStatus)}`);
  for (const [route, counts] of Object.entries(http.byRoute).sort()) {
    console.log(`  ${route.padEnd(40)} ${JSON.stringify(counts)}`);
  }
  const failures = http.findings.filter((f) => f.severe);
  const deviations = http.findings.filter((f) => !f.severe);
  console.log(
    `  5xx ${http.serverErrors}, failures ${failures.length}, format deviations ${deviations.length}, unsendable by the client ${http.unsendable}`,
  );
  for (const f of failures.slice(0, 20)) {
    console.log(
      `  FAILURE #${f.index} ${f.problem} [${f.status ?? '-'}]\n    ${f.request}\n    ${f.body ?? ''}`,
    );
  }
  const grouped = new Map<string, typeof deviations>();
  for (const f of deviations) {
    const key = `${f.problem} [${f.status ?? '-'}]`;
    grouped.set(key, [...(grouped.get(key) ?? []), f]);
  }
  for (const [key, list] of grouped) {
    const first = list[0];
    console.log(`  DEVIATION ×${list.length} ${key}, e.g. #${first?.index}: ${first?.request.slice(0, 160)}`);
  }
  const rawReport = report.raw;
  console.log(`\nRaw bytes: ${rawReport.requests} requests in ${(rawReport.elapsedMs / 1000).toFixed(1)} s`);
  for (const [service, counts] of Object.entries(rawReport.byService).sort()) {
    console.log(`  ${service.padEnd(10)} ${JSON.stringify(counts)}`);
  }
  const rawFailures = rawReport.findings.filter((f) => f.severe);
  const rawDeviations = rawReport.findings.filter((f) => !f.severe);
  console.log(`  failures ${rawFailures.length}, format deviations ${rawDeviations.length}`);
  for (const f of rawFailures.slice(0, 20)) {
    console.log(
      `  FAILURE #${f.index} ${f.problem} [${f.status ?? '-'}]\n    ${f.request}\n    ${f.body ?? ''}`,
    );
  }
  for (const f of rawDeviations.slice(0, 10)) {
    console.log(`  DEVIATION #${f.index} ${f.problem} [${f.status ?? '-'}]: ${f.request.slice(0, 160)}`);
  }
  if (amqp) {
    console.log(`\nAMQP: ${amqp.published} malformed messages`);
    console.log(
      `  parked ${amqp.parked.length}, consumed after a report ${amqp.consumed}, drained ${amqp.drained}`,
    );
    const byReason = new Map<string, number>();
    for (const p of amqp.parked) {
      const key = `${p.from} ← ${p.reason.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '<uuid>').slice(0, 80)}`;
      byReason.set(key, (byReason.get(key) ?? 0) + 1);
    }
    for (const [reason, n] of [...byReason].sort()) console.log(`  ${String(n).padStart(4)}  ${reason}`);
    console.log(
      `  finished tasks changed ${amqp.changedTasks.length}${amqp.changedTasks.length ? `: ${amqp.changedTasks.join(' ')}` : ''}`,
    );
    console.log(
      `  producer 5xx ${amqp.producerServerErrors}, parked twice ${amqp.parkedTwice.length}, services alive ${amqp.servicesAlive}`,
    );
    for (const note of amqp.notes) console.log(`  NOTE ${note}`);
  }
  console.log(`\nservice exits ${report.exits.length}${report.exits.map((e) => `\n  EXIT ${e}`).join('')}`);
  console.log(`  service logs ${report.logs.join(' ')}`);
  if (typeof values.json === 'string') writeFileSync(values.json, JSON.stringify(report, null, 2));
  console.log(`\n${report.ok ? 'PASS' : 'FAIL'}`);
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('fuzz run failed:', error);
    process.exit(1);
  },
);
