// `npm run bench [-- --quick | --full | --only=… | --out=DIR]`: see plan.ts for what each runs.

import { REPO_ROOT } from '@task-pipeline/testkit/processes';
import { parseArgs, USAGE, UsageError } from './plan.js';
import { createProgress } from './progress.js';
import { runBench } from './run.js';

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  let options: ReturnType<typeof parseArgs>;
  try {
    options = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`${err.message}\n${USAGE}`);
    return 2;
  }
  const { results, files } = await runBench(options.plan, {
    outDir: options.outDir ?? REPO_ROOT,
    progress: createProgress(),
    command: ['npm run bench', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' '),
  });
  console.log(`\nwrote ${files.join(', ')} in ${(results.durationS / 60).toFixed(1)} min`);
  if (results.failures.length > 0) {
    console.error(
      `${results.failures.length} part(s) failed: ${results.failures.map((f) => f.measure).join(', ')}`,
    );
    return 1;
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
