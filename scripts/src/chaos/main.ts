// `npm run chaos`: the zero-loss proof on private instances. Prints progress on stderr, the verdict
// table on stdout, and exits 1 when any check fails (a lost task, a flip, a fault that did not happen).
import { writeFileSync } from 'node:fs';
import { CHAOS_USAGE, parseChaosArgs, UsageError } from './options.js';
import { runChaos } from './run.js';
import { formatTable } from './verdict.js';

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseChaosArgs>;
  try {
    parsed = parseChaosArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${CHAOS_USAGE}`);
      return 2;
    }
    throw error;
  }
  if (parsed.help) {
    console.log(CHAOS_USAGE);
    return 0;
  }
  const report = await runChaos(parsed.options);
  const f = report.figures;
  console.log('\nVerdict');
  console.log(formatTable(report.verdict.rows));
  console.log('\nFigures');
  console.log(
    `  tasks accepted         ${f.accepted} (${f.createsSent} create requests, ${f.unknownCreateOutcomes} unknown outcomes retried, ${f.acceptedAfterRetry} accepted on a retry, ${f.idempotentReplays} idempotent replays)`,
  );
  console.log(`  final statuses         ${JSON.stringify(f.finalByStatus)}`);
  console.log(`  reports received       ${JSON.stringify(f.reports)} (lower bounds)`);
  console.log(`  duplicate reports      ${f.duplicateReports} (stale + duplicate) for ${f.accepted} tasks`);
  console.log(`  consumer counters      ${JSON.stringify(f.consumerCounters)}`);
  console.log(`  status samples         ${f.samples.ok} ok, ${f.samples.failed} failed (PostgreSQL down)`);
  for (const g of f.nodeDownGaps) {
    console.log(
      `  node down              ${g.fault} ${g.node}: down ${(g.downMs / 1000).toFixed(1)} s (kill to started again); ` +
        `meanwhile ${g.dispatchedWhileDown} dispatched, ${g.finishedWhileDown} finished; longest stall of dispatch ` +
        `${(g.dispatchGapMs / 1000).toFixed(1)} s, of processing ${(g.processingGapMs / 1000).toFixed(1)} s (1 s samples)`,
    );
  }
  console.log(
    `  time                   creation ${(f.creationMs / 1000).toFixed(1)} s, quiet after ${(f.quietAfterMs / 1000).toFixed(1)} s more, total ${(f.totalMs / 1000).toFixed(1)} s`,
  );
  console.log(`  seed                   ${report.options.seed} (repeat: --seed ${report.options.seed})`);
  if (report.options.keep)
    console.log(`  kept                   ${report.dataDirs.postgres} ${report.dataDirs.rabbitmq.join(' ')}`);
  console.log(`  service logs           ${Object.values(report.logs).flat().join(' ')}`);
  for (const crash of report.crashes) {
    console.log(
      `\nCRASH of ${crash.service} pid ${crash.pid} (exit ${crash.exitCode}), end of its log:\n${crash.logTail}`,
    );
  }
  if (parsed.json) writeFileSync(parsed.json, JSON.stringify(report, replacer, 2));
  const v = report.verdict;
  if (!v.ok) {
    if (v.lostTaskIds.length > 0) console.log(`\nLOST tasks: ${v.lostTaskIds.join(' ')}`);
    if (v.flippedTaskIds.length > 0) console.log(`FLIPPED tasks: ${v.flippedTaskIds.join(' ')}`);
    if (v.unexpectedTaskIds.length > 0) console.log(`UNEXPECTED tasks: ${v.unexpectedTaskIds.join(' ')}`);
    if (v.redriveFailures.length > 0) console.log(`REDRIVE failures: ${v.redriveFailures.join(' ')}`);
  }
  console.log(`\n${v.ok ? 'PASS' : 'FAIL'}: lost ${v.lostTaskIds.length}, flips ${v.flippedTaskIds.length}`);
  return v.ok ? 0 : 1;
}

function replacer(_key: string, value: unknown): unknown {
  return value instanceof Map ? Object.fromEntries(value) : value;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('chaos run failed:', error);
    process.exit(1);
  },
);
