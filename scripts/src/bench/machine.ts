// The facts a reader needs to compare a result with their own machine: cores, memory, CPU model,
// load at the start (the machine is shared), and the versions of node and both servers.
import { execFile } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { promisify } from 'node:util';
import type { Sql } from './sandbox.js';

const run = promisify(execFile);

export interface MachineFacts {
  nproc: number;
  memoryGiB: number;
  cpuModel: string;
  loadAverage: [number, number, number];
  node: string;
  postgres: string;
  rabbitmq: string;
  os: string;
}

async function command(file: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(file, args, { timeout: 60_000 });
    return stdout.trim();
  } catch {
    return 'unknown';
  }
}

export async function machineFacts(sql: Sql): Promise<MachineFacts> {
  const [{ version } = { version: 'unknown' }] = await sql<{ version: string }[]>`select version()`;
  const [nproc, rabbitmq, os] = await Promise.all([
    command('nproc', []),
    command('rabbitmqctl', ['-q', 'version']),
    command('uname', ['-sr']),
  ]);
  const [one, five, fifteen] = loadavg();
  return {
    nproc: Number(nproc) || cpus().length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    loadAverage: [one ?? 0, five ?? 0, fifteen ?? 0].map((n) => Math.round(n * 100) / 100) as [
      number,
      number,
      number,
    ],
    node: process.version,
    postgres: version.replace(/ on .*/, ''),
    rabbitmq: `RabbitMQ ${rabbitmq}`,
    os,
  };
}
