import { describe, expect, test } from 'vitest';
import { EventuallyTimeout, eventually } from '../../src/eventually.js';

describe('eventually', () => {
  test('checks until the check gives a value, and resolves with it', async () => {
    let calls = 0;
    const value = await eventually('the third call', () => (++calls === 3 ? { calls } : undefined), {
      intervalMs: 1,
    });
    expect(value).toEqual({ calls: 3 });
    expect(calls).toBe(3);
  });

  test('falsy answers (false, 0, empty string, null) mean not yet', async () => {
    const answers: unknown[] = [false, 0, '', null, undefined, 'done'];
    let i = 0;
    await expect(eventually('a truthy answer', () => answers[i++], { intervalMs: 1 })).resolves.toBe('done');
    expect(i).toBe(answers.length);
  });

  test('a check that never passes rejects with a timeout that names what it waited for', async () => {
    const error = await eventually('the moon to turn blue', () => false, {
      timeoutMs: 20,
      intervalMs: 5,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EventuallyTimeout);
    expect((error as Error).message).toContain('the moon to turn blue');
  });

  test('a check that throws fails at once with its error, without retrying', async () => {
    let calls = 0;
    const broken = new Error('broken check');
    await expect(
      eventually(
        'anything',
        () => {
          calls += 1;
          throw broken;
        },
        { intervalMs: 1 },
      ),
    ).rejects.toBe(broken);
    expect(calls).toBe(1);
  });
});
