// Where a process spent its CPU: reads V8 .cpuprofile files (node --cpu-prof, or BENCH_CPU_PROF=DIR
// with npm run bench) and prints self time by function and by package.
//   npx tsx scripts/src/bench/profile-summary.ts FILE.cpuprofile [...] [--top=25]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

interface SelfTime {
  name: string;
  ms: number;
  share: number;
}

/** node_modules/<pkg> (scoped too), our workspace folder, node: internals, or V8's own buckets. */
function packageOf(url: string): string {
  if (!url) return '(v8/native)';
  if (url.startsWith('node:')) return 'node (internals)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules) return modules[1] as string;
  const workspace = /\/(producer|consumer|rabbitmq|scripts)\/src\//.exec(url);
  return workspace ? `${workspace[1]}/src` : url;
}

function summarize(profile: CpuProfile): { byFunction: SelfTime[]; byPackage: SelfTime[]; totalMs: number } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const frame = nodes.get(id)?.callFrame;
    if (!frame) return;
    total += us;
    const file = frame.url
      .replace(/^file:\/\//, '')
      .replace(/.*\/(node_modules\/|producer\/|consumer\/|rabbitmq\/)/, '$1');
    const key =
      `${frame.functionName || '(anonymous)'} ${file ? `${file}:${frame.lineNumber + 1}` : ''}`.trim();
    fn.set(key, (fn.get(key) ?? 0) + us);
    const p = packageOf(frame.url);
    pkg.set(p, (pkg.get(p) ?? 0) + us);
  });
  const rows = (m: Map<string, number>) =>
    [...m.entries()]
      .map(([name, us]) => ({ name, ms: us / 1000, share: total > 0 ? us / total : 0 }))
      .sort((a, b) => b.ms - a.ms);
  return { byFunction: rows(fn), byPackage: rows(pkg), totalMs: total / 1000 };
}

function main(): void {
  const args = process.argv.slice(2);
  const top = Number(args.find((a) => a.startsWith('--top='))?.slice(6) ?? 25);
  for (const file of args.filter((a) => !a.startsWith('--'))) {
    const { byFunction, byPackage, totalMs } = summarize(
      JSON.parse(readFileSync(file, 'utf8')) as CpuProfile,
    );
    console.log(`\n${file}: ${(totalMs / 1000).toFixed(1)} s sampled`);
    const print = (title: string, rows: SelfTime[]) => {
      console.log(`  ${title}`);
      for (const r of rows.slice(0, top)) {
        console.log(
          `    ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms  ${r.name}`,
        );
      }
    };
    print('self time by package', byPackage);
    print('self time by function', byFunction);
  }
}

main();
