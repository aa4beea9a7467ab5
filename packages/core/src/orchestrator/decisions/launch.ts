import type { SandboxState } from "../../lifecycle.ts";
import type { SandboxRecord } from "../../schemas.ts";
import type { LaunchInput, Probe } from "../types.ts";

/** What a launch must do with the sandbox it found (docs/durability.md, "Resume"). */

/** How an existing sandbox differs from what the launch asked for; empty when it is the same one. */
export function identityConflicts(
  record: Pick<SandboxRecord, "repo" | "image_profile" | "provider">,
  input: Pick<LaunchInput, "repo" | "image_profile" | "provider">,
): string[] {
  const conflicts: string[] = [];
  if (input.repo !== undefined && record.repo !== input.repo)
    conflicts.push(`repo ${record.repo} ≠ ${input.repo}`);
  if (input.image_profile !== undefined && record.image_profile !== input.image_profile) {
    conflicts.push(`image profile ${record.image_profile} ≠ ${input.image_profile}`);
  }
  if (input.provider !== undefined && record.provider !== input.provider) {
    conflicts.push(`provider ${record.provider} ≠ ${input.provider}`);
  }
  return conflicts;
}

/** A running or completed sandbox is reused only when its sandboxd answers ready; the launch probes it first. */
export function launchNeedsProbe(state: SandboxState): boolean {
  return state === "running" || state === "completed";
}

/**
 * - reuse: the runtime answers ready; nothing to start.
 * - recover: it should run but does not answer: → error, then provision a fresh runtime.
 * - relaunch_interrupted_teardown: a teardown died mid-way (its runtime was stopped): → error, then provision.
 * - provision: new, destroyed or error: provision (retry, resume).
 */
export type LaunchStep = "reuse" | "recover" | "relaunch_interrupted_teardown" | "provision";

export function launchStep(state: SandboxState, probe: Probe | null): LaunchStep {
  if (launchNeedsProbe(state)) {
    return probe?.state === "ok" && probe.status?.phase === "ready" ? "reuse" : "recover";
  }
  if (state === "tearing_down") return "relaunch_interrupted_teardown";
  return "provision";
}

/** A launch resumes a sandbox that ran before (its workspace or checkpoint is brought back). */
export function launchResumes(state: SandboxState): boolean {
  return state === "destroyed" || state === "error" || state === "tearing_down" || state === "suspended";
}

/**
 * Where a fresh runtime's workspace comes from: a verified checkpoint when the provider kept no
 * workspace, otherwise a clone (or the kept workspace, which sandboxd's init adopts).
 */
export function workspaceSource(
  hasVerifiedCheckpoint: boolean,
  providerKeptWorkspace: boolean,
): "restore" | "init" {
  return hasVerifiedCheckpoint && !providerKeptWorkspace ? "restore" : "init";
}
