// The launcher's broker check with a cluster's node list in AMQP_URL: one node answering is enough,
// and what it prints never shows a password.

import { TEST_AMQP_URL } from '@task-pipeline/testkit/isolation';
import { describe, expect, test } from 'vitest';
import { checkRabbitmq, LaunchError, redact } from '../../../src/launcher/preflight.js';

describe('checkRabbitmq over a broker list', () => {
  test('passes when a later node of the list answers, fails naming every node when none does', async () => {
    const dead = 'amqp://guest:secret@127.0.0.1:1';
    await expect(checkRabbitmq(`${dead},${TEST_AMQP_URL}`)).resolves.toBeUndefined();
    const error = await checkRabbitmq(`${dead},127.0.0.1:2`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LaunchError);
    expect((error as LaunchError).message).toContain(
      'amqp://guest:***@127.0.0.1:1,amqp://guest:***@127.0.0.1:2',
    );
    expect((error as LaunchError).message).not.toContain('secret');
  });

  test('redact hides the password of every URL of the list', () => {
    expect(redact('amqp://u:p1@h1:5672,h2')).toBe('amqp://u:***@h1:5672,amqp://u:***@h2:5672');
  });
});
