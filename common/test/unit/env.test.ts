import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import { ConfigError, envBoolean, envInt, parseEnv } from '../../src/env.js';

const Schema = z.object({
  PORT: envInt(0, 65_535).default(3000),
  ENABLED: envBoolean.default(true),
  TOKEN: z.string().min(16, 'must be at least 16 characters'),
});

describe('parseEnv', () => {
  test('parses with defaults; an empty variable counts as unset', () => {
    expect(parseEnv(Schema, { TOKEN: 'x'.repeat(16), PORT: '', ENABLED: 'no', OTHER: 'ignored' })).toEqual({
      PORT: 3000,
      ENABLED: false,
      TOKEN: 'x'.repeat(16),
    });
  });

  test('every bad variable named in one line, as a ConfigError', () => {
    let error: unknown;
    try {
      parseEnv(Schema, { PORT: '70000', ENABLED: 'maybe', TOKEN: 'short' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    expect(message).toMatch(
      /^invalid configuration: PORT: .*; ENABLED: .*; TOKEN: must be at least 16 characters$/,
    );
  });
});
