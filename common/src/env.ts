// Loading a service's configuration from the environment, the same way in every entry point: one zod
// schema over the variables, parsed once at start; a bad value stops the process with one line that
// names the variable (PROTOCOL §8), before any logger exists.
import { z } from 'zod';

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
}

/** A yes/no variable: true, false, 1, 0, yes, no. */
export const envBoolean = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** An integer variable within [min, max]. */
export const envInt = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max);

/** LOG_LEVEL: pino's levels. */
export const envLogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/**
 * Parses the environment with `schema`; throws a ConfigError whose one-line message names every bad
 * variable. Empty strings mean "unset", as compose files often pass `VAR=` through.
 */
export function parseEnv<S extends z.ZodType>(
  schema: S,
  env: Record<string, string | undefined> = process.env,
): z.output<S> {
  const defined = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(defined);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path[0]?.toString() ?? 'environment'}: ${i.message}`,
    );
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/**
 * Runs a service's config loader; a ConfigError ends the process at once with exit code 1 and one
 * line on stderr, `<service>: invalid configuration: VARIABLE: what is wrong`.
 */
export function loadOrExit<T>(service: string, load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${service}: ${err.message}\n`);
    process.exit(1);
  }
}
