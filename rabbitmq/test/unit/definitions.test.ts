import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { DEFINITIONS_PATH, renderDefinitions } from '../../scripts/generate-definitions.js';
import { buildTopology, DEFAULT_RETRY_DELAYS_SECONDS, QUEUES, retryQueueName } from '../../src/topology.js';

describe('definitions.json', () => {
  test('is what `npm run definitions -w @task-pipeline/rabbitmq` writes today', () => {
    // A stale file fails here: regenerate it and commit the result.
    expect(readFileSync(DEFINITIONS_PATH, 'utf8')).toBe(renderDefinitions());
  });

  test('holds the whole consumer topology, retry queues included', () => {
    const definitions = JSON.parse(renderDefinitions()) as { queues: { name: string }[] };
    const names = definitions.queues.map((q) => q.name);
    const expected = buildTopology({ role: 'consumer', retryDelaysSeconds: DEFAULT_RETRY_DELAYS_SECONDS });
    expect(names).toEqual(expected.queues.map((q) => q.name));
    expect(names).toEqual(
      expect.arrayContaining([QUEUES.results, QUEUES.parking, QUEUES.deadLetter, retryQueueName(30)]),
    );
  });
});
