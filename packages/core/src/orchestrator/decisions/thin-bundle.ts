/**
 * Whether the thin bundle sandboxd wrote on the last verified checkpoint *before* the repo's
 * remote answered may be kept, once it has answered (docs/durability.md, "Incremental
 * checkpoints"; sandboxd's workspace-snapshot.ts). The remote's answer (`git ls-remote`) is the
 * slowest step of a one-file checkpoint, and the bundle does not need it in the usual case: it
 * leaves out the parent checkpoint's commits, which the remote's answer can only confirm. It can
 * also show that the parent is no longer a safe base (a force-push removed the upstream commits
 * its chain needs): then the early bundle is thrown away and the checkpoint is written again
 * without the parent, so a missing link is still found at checkpoint time.
 *
 * - `rebuild`: the parent is not kept, or no early bundle was written: write the bundle with the
 *   bases the answer gave.
 * - `keep`: the parent is kept and every upstream tip to leave out is one the parent already
 *   covers (its own commits, or the upstream commits its chain was verified to build on): the
 *   bundle the answer would give is the one already written.
 * - `check`: the parent is kept but the remote has tips the parent may not cover (`uncovered`, a
 *   branch that moved or another branch): keep the early bundle only if git says leaving them
 *   out too drops none of its commits (else the bundle the answer gives is smaller).
 */
export type EarlyBundleVerdict =
  | { action: "keep" }
  | { action: "rebuild" }
  | { action: "check"; uncovered: string[] };

export function earlyBundleVerdict(input: {
  /** An early bundle was written on these commits (the parent's head and checkpoint commits). */
  earlyOn: string[] | null;
  /** The parent commits the remote's answer leaves as safe bases ([] when it drops the parent). */
  parentBases: string[];
  /** The remote's tips this repo has (what the answer leaves out besides the parent). */
  upstreamBases: string[];
  /** The upstream commits the parent's chain builds on (verified when it was made). */
  chainUpstream: string[];
}): EarlyBundleVerdict {
  const { earlyOn, parentBases } = input;
  if (!earlyOn || earlyOn.length === 0) return { action: "rebuild" };
  // The answer must keep exactly the commits the early bundle left out: a dropped parent (the
  // upstream its chain needs is gone) means the early bundle depends on a link restore could not
  // assemble.
  const same = earlyOn.length === parentBases.length && earlyOn.every((c) => parentBases.includes(c));
  if (!same) return { action: "rebuild" };
  const covered = new Set([...earlyOn, ...input.chainUpstream]);
  const uncovered = input.upstreamBases.filter((t) => !covered.has(t));
  return uncovered.length === 0 ? { action: "keep" } : { action: "check", uncovered };
}
