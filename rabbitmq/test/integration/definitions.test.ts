import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useTestVhost } from '@task-pipeline/testkit/hooks';
import { rabbitmqctl } from '@task-pipeline/testkit/isolation';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { renderDefinitions } from '../../scripts/generate-definitions.js';
import { assertTopology, buildTopology, DEFAULT_RETRY_DELAYS_SECONDS } from '../../src/topology.js';

const vhost = useTestVhost('definitions');
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tp-definitions-'));
  // rabbitmqctl drops to the rabbitmq account, which must be able to read the file.
  chmodSync(dir, 0o755);
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
});

describe('definitions.json on a real broker', () => {
  test('imports, and the services then assert the same topology without PRECONDITION_FAILED', async () => {
    const file = join(dir, 'definitions.json');
    writeFileSync(file, renderDefinitions(vhost.name));
    await rabbitmqctl('import_definitions', file);

    const connection = await amqp.connect(vhost.url);
    try {
      const topology = buildTopology({ role: 'consumer', retryDelaysSeconds: DEFAULT_RETRY_DELAYS_SECONDS });
      const channel = await connection.createChannel();
      // Passive checks first: the import itself created every queue (a 404 would close the channel).
      for (const queue of topology.queues) await channel.checkQueue(queue.name);
      // Re-declaring with the code's arguments fails if any argument differs from the file's.
      await assertTopology(channel, topology);
      await assertTopology(channel, buildTopology({ role: 'producer' }));
      await channel.close();

      // The control: a declaration that differs from the imported queue is refused.
      const other = await connection.createChannel();
      other.on('error', () => undefined);
      const first = topology.queues[0];
      const refused = await other
        .assertQueue(first?.name ?? '', { durable: true, arguments: { 'x-queue-type': 'classic' } })
        .catch((err: unknown) => err);
      expect(String(refused)).toMatch(/PRECONDITION_FAILED/);
    } finally {
      await connection.close();
    }
  });
});
