// Every timestamp in the tasks table is on the database's clock: created_at, updated_at and
// finished_at are its now(). The one event the producer times itself, the broker's confirm of a
// publish (sent_at), is handed over as its age and written as now() minus that age, so that a
// producer whose clock is off from the database's cannot stamp a task sent after it finished or
// before it was created. The age is taken when the statement is built, so a statement that then
// waits for a connection writes sent_at that much late (never after the task's finished_at).

/** Seconds since `at` on this process's clock (never negative: a clock set back counts as none). */
export function secondsSince(at: Date, now: number = Date.now()): number {
  return Math.max(0, now - at.getTime()) / 1000;
}
