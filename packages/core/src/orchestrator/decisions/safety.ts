import type { SandboxState } from "../../lifecycle.ts";
import type { SandboxRecord } from "../../schemas.ts";
import type { Probe, SandboxdStatusView } from "../types.ts";

/**
 * Teardown safety (docs/durability.md, "Teardown and its blockers"): whether a workspace holds
 * work nothing else has, and what stops a teardown without --force.
 */

/** States in which a runtime is expected to answer. */
export const LIVE_STATES: readonly SandboxState[] = ["running", "completed", "saving"];

/**
 * A sandbox whose setup failed: in `error`, its runtime left running with the checkout in place
 * for inspection (docs/environments.md, "Setup"). Its sandboxd is asked like a live one's (status,
 * logs, open, diff, and the checkpoint a teardown without --force takes of unsaved work), but it
 * takes no task until it is launched again.
 */
export function keptForInspection(record: Pick<SandboxRecord, "state" | "runtime" | "error">): boolean {
  return record.state === "error" && record.runtime !== null && record.error?.reason_code === "setup_failed";
}

/** Whether sandboxd is asked about this sandbox: a live one, or one kept for inspection. */
export function answersProbe(record: Pick<SandboxRecord, "state" | "runtime" | "error">): boolean {
  return (LIVE_STATES.includes(record.state) && record.runtime !== null) || keptForInspection(record);
}

export type Blocker = "operation_in_progress" | "agent_busy" | "unsaved_changes" | "runtime_unreachable";

/**
 * Whether the workspace holds work that is neither in the latest verified checkpoint nor in the
 * latest export (compared by content: git tree hashes).
 */
export function hasUnsavedWork(record: SandboxRecord, workspace: SandboxdStatusView["workspace"]): boolean {
  if (!workspace) return false;
  if (!workspace.dirty && workspace.ahead === 0) return false;
  const tree = workspace.tree_hash;
  if (tree === null) return true;
  if (record.checkpoint?.verified && record.checkpoint.tree_hash === tree) return false;
  if (record.export?.tree_hash === tree) return false;
  return true;
}

/** Why a teardown without --force would not go ahead right now. */
export function teardownBlockers(
  record: SandboxRecord,
  probe: Probe,
  lease: { type: string } | null,
): Blocker[] {
  const blockers: Blocker[] = [];
  if (lease) blockers.push("operation_in_progress");
  const status = probe.status;
  if (status) {
    if (status.agent.state === "busy" || status.agent.state === "retry" || status.task?.state === "running") {
      blockers.push("agent_busy");
    }
    if (hasUnsavedWork(record, status.workspace)) blockers.push("unsaved_changes");
  } else if (LIVE_STATES.includes(record.state) || keptForInspection(record) || probe.kept_workspace) {
    blockers.push("runtime_unreachable");
  }
  return blockers;
}

/**
 * What a teardown without --force does given its blockers (a lease is never among them: the
 * teardown holds it). A busy agent is the user's to stop; a runtime that does not answer may
 * hold work nobody can read; unsaved work is checkpointed first.
 */
export type TeardownPlan = "refuse_agent_busy" | "refuse_unreachable" | "checkpoint_then_destroy" | "destroy";

export function teardownPlan(blockers: readonly Blocker[]): TeardownPlan {
  if (blockers.includes("agent_busy")) return "refuse_agent_busy";
  if (blockers.includes("runtime_unreachable")) return "refuse_unreachable";
  if (blockers.includes("unsaved_changes")) return "checkpoint_then_destroy";
  return "destroy";
}

/** The unsaved work a refused teardown reports. */
export function unsavedWork(workspace: SandboxdStatusView["workspace"] | undefined): {
  unsaved_files: string[];
  unsaved_commits: number;
} {
  return {
    unsaved_files: workspace?.changed_files.map((f) => f.path) ?? [],
    unsaved_commits: workspace?.ahead ?? 0,
  };
}
