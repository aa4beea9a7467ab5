import { AlpineError } from "./errors.ts";

export const STATES = [
  "new",
  "provisioning",
  "running",
  "saving",
  "completed",
  "tearing_down",
  "destroyed",
  "error",
  "suspended",
] as const;
export type SandboxState = (typeof STATES)[number];

/** The only state changes alpine ever makes (docs/architecture.md, "Lifecycle"). */
export const TRANSITIONS: Readonly<Record<SandboxState, readonly SandboxState[]>> = {
  new: ["provisioning", "error"],
  provisioning: ["running", "completed", "error"],
  running: ["saving", "completed", "tearing_down", "error", "suspended"],
  saving: ["running", "completed", "tearing_down", "error", "suspended"],
  completed: ["running", "saving", "tearing_down", "error", "suspended"],
  tearing_down: ["destroyed", "error"],
  destroyed: ["provisioning"],
  // saving: a teardown checkpoints the unsaved work of a sandbox kept for inspection after a failed setup.
  error: ["provisioning", "saving", "tearing_down"],
  // Idle past sandbox.suspend_after_minutes: work saved, runtime stopped (docs/durability.md).
  suspended: ["provisioning", "tearing_down", "error"],
};

export function canTransition(from: SandboxState, to: SandboxState): boolean {
  return TRANSITIONS[from].includes(to);
}

export interface LifecycleEvent {
  sandbox_id: string;
  at: string;
  from: SandboxState;
  to: SandboxState;
  operation_id: string;
  reason: string;
}

/**
 * The one function through which every state change goes. It checks the table
 * and returns the event the caller must append together with the new state.
 */
export function transition(
  current: { id: string; state: SandboxState },
  to: SandboxState,
  ctx: { at: string; operation_id: string; reason: string },
): LifecycleEvent {
  if (!canTransition(current.state, to)) {
    throw new AlpineError(
      "state_transition_invalid",
      `cannot go from ${current.state} to ${to} (${ctx.reason})`,
      { from: current.state, to, allowed: [...TRANSITIONS[current.state]] },
    );
  }
  return {
    sandbox_id: current.id,
    at: ctx.at,
    from: current.state,
    to,
    operation_id: ctx.operation_id,
    reason: ctx.reason,
  };
}
