// The simulated work's outcome, decided by a hash rather than a random draw: a duplicate delivery
// of the same message (same task, attempt and retry count) always gets the same outcome, so
// at-least-once delivery cannot turn a reported success into an error or back.
import { createHash } from 'node:crypto';

export const SIMULATED_FAILURE = 'simulated processing failure';

export interface SimulationPolicy {
  failureSeed: string;
  /** 0 never fails, 1 always fails. */
  failureRate: number;
}

export interface SimulationInput {
  taskId: string;
  attempt: number;
  retryCount: number;
}

export type SimulatedOutcome = { ok: true } | { ok: false; error: string };

/** A uniform draw in [0, 1) fixed by seed, task, attempt and retry count. */
export function simulationDraw(seed: string, { taskId, attempt, retryCount }: SimulationInput): number {
  const digest = createHash('sha256').update(`${seed}\0${taskId}\0${attempt}\0${retryCount}`).digest();
  // 48 bits fit a double exactly.
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

export function simulateOutcome(policy: SimulationPolicy, input: SimulationInput): SimulatedOutcome {
  // A rate of 0 or 1 decides without the draw (a hash per message).
  if (policy.failureRate <= 0) return { ok: true };
  return policy.failureRate >= 1 || simulationDraw(policy.failureSeed, input) < policy.failureRate
    ? { ok: false, error: SIMULATED_FAILURE }
    : { ok: true };
}
