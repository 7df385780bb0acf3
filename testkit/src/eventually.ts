// The one poll-until-true of the tests and runners: checks again and again until the check gives a
// value, then returns it. Deadlines are generous by default because the machine is shared: a check
// that must not pass has its own assertion, a deadline only bounds how long a broken run hangs.

export class EventuallyTimeout extends Error {
  readonly code = 'TIMEOUT';
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(`timed out after ${timeoutMs} ms waiting for ${what}`, options);
    this.name = 'EventuallyTimeout';
  }
}

export interface EventuallyOptions {
  /** How long to keep trying; 30 s unless given. */
  timeoutMs?: number;
  /** The pause between two checks; 50 ms unless given. */
  intervalMs?: number;
}

/** Not there yet: the check answers something falsy (false, undefined, null, 0, ''). */
type Pending = false | undefined | null | 0 | '';

/**
 * Runs `check` until it returns something truthy, and resolves with that (a boolean check resolves
 * with `true`, a read with the value read). A check that throws fails at once: an error is an
 * answer, not "not yet". Rejects with EventuallyTimeout, naming `what`.
 */
export async function eventually<T>(
  what: string,
  check: () => T | Pending | Promise<T | Pending>,
  options: EventuallyOptions = {},
): Promise<Exclude<T, Pending>> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Exclude<T, Pending>;
    if (Date.now() > deadline) throw new EventuallyTimeout(what, timeoutMs);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
