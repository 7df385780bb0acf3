// DISPATCH_MAX_IN_FLIGHT across replicas (pure). The cap is on one figure: `sent` tasks plus what
// every dispatcher has claimed and not recorded. A dispatcher counts that figure, reserves a share of
// the room left in its row of dispatcher_claims (where the others count it as claimed), and claims
// from its share until it is spent or a second old, then counts again.

export interface ShareInput {
  maxInFlight: number;
  /** `sent` tasks at the count. */
  sent: number;
  /** What the other dispatchers had claimed or reserved and not recorded, at the count. */
  claimedElsewhere: number;
  /** This dispatcher's own claimed-but-unrecorded tasks. */
  own: number;
  /** Live dispatchers, this one included. */
  dispatchers: number;
}

/**
 * The tasks this dispatcher may claim until it counts again: its share of the room, 1/n of it for n
 * live dispatchers, and at most half even when it sees no other. Dispatchers that count at the same
 * moment see the same room and no reservation of each other: a share of 1/n each still adds up to no
 * more than the room, and a dispatcher that has just started (not yet counted by the others) gets
 * half at most. Rounded up, so that a last free place is not left unused (the cap may be passed by
 * one task per replica).
 */
export function claimShare(input: ShareInput): number {
  const free = input.maxInFlight - input.sent - input.claimedElsewhere - input.own;
  if (free <= 0) return 0;
  return Math.ceil(free / Math.max(2, input.dispatchers));
}
