// The two services as child processes, started the way an operator runs them from source, on free
// ports, returned once they answer (the spawner itself is the test kit's).
import { freePort } from '@task-pipeline/testkit/private-process';
import { type Service, startService, waitForHttp } from '@task-pipeline/testkit/processes';

export interface ConsumerProcess extends Service {
  readonly healthUrl: string;
}

/** Starts consumer/src/main.ts and waits until its health port answers. */
export async function spawnConsumer(env: Record<string, string>): Promise<ConsumerProcess> {
  const port = await freePort();
  const service = startService('consumer', 'consumer/src/main.ts', {
    LOG_LEVEL: 'info',
    ...env,
    HEALTH_PORT: String(port),
  });
  const healthUrl = `http://127.0.0.1:${port}`;
  await waitForHttp(service, `${healthUrl}/health/live`);
  return Object.assign(service, { healthUrl });
}

/** Starts producer/src/server.ts (migrations included) and waits until it answers. */
export async function spawnProducer(env: Record<string, string>): Promise<Service & { url: string }> {
  const port = await freePort();
  const service = startService('producer', 'producer/src/server.ts', {
    LOG_LEVEL: 'warn',
    ...env,
    PORT: String(port),
    HOST: '127.0.0.1',
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(service, `${url}/health/ready`);
  return Object.assign(service, { url });
}

/** Sums a Prometheus counter (all label sets, or those matching `labels`) from a /metrics text. */
export function counterFromText(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_]+)(\{([^}]*)\})? ([0-9.e+-]+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      (match[3] ?? '')
        .split(',')
        .filter(Boolean)
        .map((pair) => {
          const [k, v] = pair.split('=');
          return [k, v?.replace(/^"|"$/g, '')];
        }),
    );
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) sum += Number(match[4]);
  }
  return sum;
}

export async function scrape(healthUrl: string): Promise<string> {
  const res = await fetch(`${healthUrl}/metrics`);
  return res.text();
}
