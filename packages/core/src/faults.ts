/**
 * Named steps of the orchestrator's mutating operations, where a test build
 * can stop the process (docs/reliability.md, "Fault injection"). The
 * orchestrator announces each step to an optional `FaultPoints` port; the CLI
 * wires one only in its test bundle (esbuild define `__ALPINE_FAULTS__`), so
 * the production `dist/alpine.js` never honours a fault request.
 */
export const FAULT_STEPS = [
  // launch
  "launch.lease_acquired",
  "launch.provisioning",
  "launch.runtime_created",
  "launch.runtime_started",
  "launch.cloning",
  "launch.agent_starting",
  "launch.restoring",
  "launch.running",
  // checkpoint (also inside a teardown that saves unsaved work)
  "checkpoint.lease_acquired",
  "checkpoint.saving",
  "checkpoint.written",
  "checkpoint.artifact_stored",
  "checkpoint.manifest_stored",
  "checkpoint.verified",
  // export
  "export.lease_acquired",
  "export.pushed",
  "export.recorded",
  // teardown
  "teardown.lease_acquired",
  "teardown.checkpointed",
  "teardown.tearing_down",
  "teardown.runtime_stopped",
  "teardown.runtime_destroyed",
] as const;

export type FaultStep = (typeof FAULT_STEPS)[number];

/** Told of every step an operation reaches; may stop the process there (test builds only). */
export interface FaultPoints {
  reached(step: FaultStep): void | Promise<void>;
}
