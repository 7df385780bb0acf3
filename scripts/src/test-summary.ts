// Reads vitest JSON reports and prints the closing line CI reads: "N passed, N failed[, N skipped]".
// Failed check stages (build, lint, types) count as failures; exits 1 when anything failed.
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface VitestJson {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  testResults: { name: string; status: string; message?: string }[];
}

const args = process.argv.slice(2);
let failed = 0;
let passed = 0;
let skipped = 0;
const files: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--extra-failed') failed += Number(args[++i] ?? 0);
  else files.push(args[i] as string);
}

for (const file of files) {
  if (!existsSync(file)) {
    console.error(`no report at ${file}: the run did not finish`);
    failed += 1;
    continue;
  }
  const report = JSON.parse(readFileSync(file, 'utf8')) as VitestJson;
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
  // One line per report (a tier in scripts/test.sh) before the total.
  console.log(
    `  ${basename(file, '.json')}: ${report.numPassedTests} passed, ${report.numFailedTests} failed` +
      `, ${report.testResults.length} files`,
  );
  // A file that fails to load (syntax error, failing beforeAll) has a message but no failed test.
  for (const suite of report.testResults) {
    if (suite.status === 'failed' && (suite.message ?? '') !== '') {
      console.error(`suite failed: ${suite.name}\n${suite.message}`);
      failed += 1;
    }
  }
}

console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
