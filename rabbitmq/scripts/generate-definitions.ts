// Writes rabbitmq/definitions.json from the topology the consumer asserts (the full PROTOCOL §5
// topology with the default retry delays), for operators: `rabbitmqctl import_definitions`. It is
// never loaded at boot (that would skip the default user); a unit test fails when it is stale.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildTopology, DEFAULT_RETRY_DELAYS_SECONDS, type Topology } from '../src/topology.js';

export const DEFINITIONS_PATH = fileURLToPath(new URL('../definitions.json', import.meta.url));

/** The topology in RabbitMQ's definitions format (the subset `import_definitions` needs). */
export function toDefinitions(topology: Topology, vhost = '/') {
  return {
    vhosts: [{ name: vhost }],
    exchanges: topology.exchanges.map((e) => ({
      name: e.name,
      vhost,
      type: e.type,
      durable: true,
      auto_delete: false,
      internal: false,
      arguments: {},
    })),
    queues: topology.queues.map((q) => ({
      name: q.name,
      vhost,
      durable: true,
      auto_delete: false,
      arguments: q.arguments,
    })),
    bindings: topology.bindings.map((b) => ({
      source: b.exchange,
      vhost,
      destination: b.queue,
      destination_type: 'queue',
      routing_key: b.routingKey,
      arguments: {},
    })),
  };
}

/** The exact file content, so the test compares bytes rather than re-deriving the format. */
export function renderDefinitions(vhost = '/'): string {
  const topology = buildTopology({ role: 'consumer', retryDelaysSeconds: DEFAULT_RETRY_DELAYS_SECONDS });
  return `${JSON.stringify(toDefinitions(topology, vhost), null, 2)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(DEFINITIONS_PATH, renderDefinitions());
  process.stdout.write(`wrote ${DEFINITIONS_PATH}\n`);
}
