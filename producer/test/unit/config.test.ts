// The producer's configuration checks between variables: what passes must be workable, and what is
// refused is refused in one line that names the variable to change.
import { ConfigError } from '@task-pipeline/common';
import { describe, expect, test } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { MIN_STATEMENT_DEADLINE_MS, statementDeadlineMs } from '../../src/dispatch/dispatch-repository.js';

const TOKEN = 'a-token-of-sixteen-or-more';

function refusal(env: Record<string, string>): string {
  try {
    loadConfig({ STATUS_API_TOKEN: TOKEN, ...env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

describe('DISPATCH_LEASE_S and DISPATCH_CONFIRM_TIMEOUT_MS', () => {
  test('the defaults leave the dispatcher 20 s per statement', () => {
    const { dispatch } = loadConfig({ STATUS_API_TOKEN: TOKEN });
    expect(statementDeadlineMs(dispatch)).toBe(20_000);
  });

  test('a lease at or below 3 × the confirm timeout is refused, as before', () => {
    expect(refusal({ DISPATCH_LEASE_S: '15' })).toMatch(
      /^invalid configuration: DISPATCH_LEASE_S: must exceed 3 × DISPATCH_CONFIRM_TIMEOUT_MS \(15 s\)$/,
    );
  });

  test.each([
    // lease, confirm timeout: above 3 × the confirm timeout, but a statement deadline under 5 s.
    ['6', '1000', '4 s'],
    ['11', '3500', '4 s'],
    ['10', '3000', '4 s'],
    ['1', '100', '0.8 s'],
  ])(
    'a lease of %s s with confirms of %s ms leaves %s per statement: refused, naming the variable',
    (lease, confirm, left) => {
      const message = refusal({ DISPATCH_LEASE_S: lease, DISPATCH_CONFIRM_TIMEOUT_MS: confirm });
      expect(message.split('\n')).toHaveLength(1);
      expect(message).toMatch(
        /^invalid configuration: DISPATCH_LEASE_S: must be at least 2 × DISPATCH_CONFIRM_TIMEOUT_MS \+ 5 s/,
      );
      expect(message).toContain(`they get ${left}`);
    },
  );

  test('exactly the minimum deadline is accepted', () => {
    expect(MIN_STATEMENT_DEADLINE_MS).toBe(5_000);
    const { dispatch } = loadConfig({
      STATUS_API_TOKEN: TOKEN,
      DISPATCH_LEASE_S: '11',
      DISPATCH_CONFIRM_TIMEOUT_MS: '3000',
    });
    expect(statementDeadlineMs(dispatch)).toBe(MIN_STATEMENT_DEADLINE_MS);
  });
});

describe('DISPATCH_RECORD_DELAY_MS', () => {
  test('1 s by default; 0 records at once; up to the confirm timeout, not past it', () => {
    const delay = (env: Record<string, string>) =>
      loadConfig({ STATUS_API_TOKEN: TOKEN, ...env }).dispatch.recordDelayMs;
    expect(delay({})).toBe(1_000);
    expect(delay({ DISPATCH_RECORD_DELAY_MS: '0' })).toBe(0);
    expect(delay({ DISPATCH_RECORD_DELAY_MS: '5000' })).toBe(5_000);
    expect(refusal({ DISPATCH_RECORD_DELAY_MS: '5001' })).toBe(
      'invalid configuration: DISPATCH_RECORD_DELAY_MS: must not exceed DISPATCH_CONFIRM_TIMEOUT_MS (5000)',
    );
    expect(refusal({ DISPATCH_RECORD_DELAY_MS: '-1' })).toMatch(
      /^invalid configuration: DISPATCH_RECORD_DELAY_MS: /,
    );
  });
});

describe('the operator settings', () => {
  test('TASK_RETENTION: 7 days by default, units d/h/m/s, 0 keeps everything', () => {
    const retention = (value?: string) =>
      loadConfig({ STATUS_API_TOKEN: TOKEN, ...(value === undefined ? {} : { TASK_RETENTION: value }) })
        .operator.retentionSeconds;
    expect(retention()).toBe(7 * 86_400);
    expect(retention('12h')).toBe(12 * 3_600);
    expect(retention('30m')).toBe(1_800);
    expect(retention('45s')).toBe(45);
    expect(retention('0')).toBe(0);
  });

  test.each(['7', '7 d', '-1d', '1w', 'forever', '1.5h'])(
    'TASK_RETENTION=%s is refused, naming it',
    (value) => {
      expect(refusal({ TASK_RETENTION: value })).toMatch(/^invalid configuration: TASK_RETENTION: /);
    },
  );

  test('OPERATOR_READ_TOKEN: optional, at least 16 characters, never the status token', () => {
    expect(loadConfig({ STATUS_API_TOKEN: TOKEN }).operatorReadToken).toBeUndefined();
    expect(
      loadConfig({ STATUS_API_TOKEN: TOKEN, OPERATOR_READ_TOKEN: 'read-only-token-0123' }).operatorReadToken,
    ).toBe('read-only-token-0123');
    expect(refusal({ OPERATOR_READ_TOKEN: 'short' })).toMatch(/OPERATOR_READ_TOKEN: must be at least 16/);
    expect(refusal({ OPERATOR_READ_TOKEN: TOKEN })).toMatch(
      /OPERATOR_READ_TOKEN: must differ from STATUS_API_TOKEN/,
    );
  });
});
