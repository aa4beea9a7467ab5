import { AlpineError } from "../../errors.ts";
import type { SandboxState } from "../../lifecycle.ts";
import type { SandboxRecord, StoredEvent } from "../../schemas.ts";

/**
 * How to settle a sandbox that a dead command left in a transitional state (docs/architecture.md,
 * "Leases"). Those states exist only while the operation that entered them holds the lease; a
 * caller holding the lease and finding one knows that operation died.
 */

/** States that exist only while the operation that entered them holds the sandbox's lease. */
export const TRANSITIONAL_STATES: readonly SandboxState[] = ["provisioning", "saving", "tearing_down"];

export type Settlement =
  | { kind: "none" }
  /** provisioning → error; whatever runtime the dead launch started is stopped. */
  | { kind: "fail_launch"; to: "error"; reason: string; error: AlpineError }
  /**
   * saving → the state it was saved from (error when that is unknown); checkpoints the dead
   * operation stored but never recorded as verified are discarded.
   */
  | { kind: "undo_saving"; to: SandboxState; reason: string; error: AlpineError | null }
  /**
   * tearing_down stays: the decision to destroy was taken with the safety checks passed (or
   * --force), so `teardown` finishes it. Its runtime is stopped; the first settlement marks the
   * record (error + a note), later ones find it marked.
   */
  | { kind: "hold_teardown"; mark: { error: AlpineError; note: string } | null };

/** The state a sandbox was in when its latest `saving` began, from its events. */
export function stateBeforeSaving(events: readonly StoredEvent[]): SandboxState | null {
  let from: SandboxState | null = null;
  for (const e of events) {
    if (e.kind === "transition" && e.to === "saving") from = e.from;
  }
  return from;
}

/** `events` are the sandbox's events; only a sandbox in `saving` needs them. */
export function settlementOf(record: SandboxRecord, events: readonly StoredEvent[]): Settlement {
  const { name } = record;
  switch (record.state) {
    case "provisioning":
      return {
        kind: "fail_launch",
        to: "error",
        reason: "the launch was interrupted (its process died)",
        error: new AlpineError(
          "sandbox_unavailable",
          `the launch of '${name}' was interrupted; run \`alpine launch ${name}\` to start it again`,
          { interrupted: "launch" },
        ),
      };
    case "saving": {
      const from = stateBeforeSaving(events);
      const to = from === "running" || from === "completed" ? from : "error";
      return {
        kind: "undo_saving",
        to,
        reason: "the checkpoint was interrupted (its process died); the previous verified checkpoint stays",
        error:
          to === "error"
            ? new AlpineError("sandbox_unavailable", `a checkpoint of '${name}' was interrupted`)
            : null,
      };
    }
    case "tearing_down":
      return {
        kind: "hold_teardown",
        mark:
          record.error?.details?.interrupted === "teardown"
            ? null
            : {
                error: new AlpineError(
                  "sandbox_unavailable",
                  `the teardown of '${name}' was interrupted; run \`alpine teardown ${name}\` to finish it, or \`alpine launch ${name}\` to bring it back`,
                  { interrupted: "teardown" },
                ),
                note: "the teardown was interrupted (its process died); its runtime was stopped",
              },
      };
    default:
      return { kind: "none" };
  }
}
