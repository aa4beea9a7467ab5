import { AlpineError } from "../../errors.ts";
import type { SandboxState } from "../../lifecycle.ts";
import type { ChangesRecord, SandboxRecord } from "../../schemas.ts";
import type { SandboxdStatusView } from "../types.ts";

/**
 * What sandboxd's status means for the record: a task that finished without error moves
 * running → completed (docs/architecture.md, "Lifecycle"); a failed task leaves the sandbox
 * running with the agent in `error`.
 */

export interface Observation {
  /** The record's task finished and the agent went idle. */
  finished: boolean;
  /** The agent's state or last activity differ from the record's. */
  agentChanged: boolean;
  /** The workspace's changed files (or its tree) differ from what the record kept (`changes`). */
  changesChanged: boolean;
}

/**
 * What the record keeps of a status's workspace for overlap warnings (decisions/overlaps.ts):
 * null when sandboxd reported no workspace (then the record keeps what it had).
 */
export function changesSeen(status: SandboxdStatusView, now: string): ChangesRecord | null {
  const ws = status.workspace;
  if (!ws) return null;
  return { files: ws.changed_files.map((f) => f.path).sort(), tree_hash: ws.tree_hash, seen_at: now };
}

function sameChanges(a: ChangesRecord | null | undefined, b: ChangesRecord | null): boolean {
  if (!b) return true;
  // A record that kept nothing and a workspace with no changes agree (no write for an untouched sandbox).
  if (!a) return b.files.length === 0;
  if (a.tree_hash !== b.tree_hash || a.files.length !== b.files.length) return false;
  return a.files.every((f, i) => f === b.files[i]);
}

export function observeStatus(record: SandboxRecord, status: SandboxdStatusView): Observation {
  const sameTask =
    record.task !== null && status.task !== null && status.task.session_id === record.task.session_id;
  const agentIdle = status.agent.state !== "busy" && status.agent.state !== "retry";
  return {
    finished: record.state === "running" && sameTask && status.task?.state === "completed" && agentIdle,
    agentChanged:
      status.agent.state !== record.agent ||
      status.agent.last_activity !== record.last_activity ||
      (status.agent.reason ?? null) !== (record.agent_reason ?? null) ||
      taskObservationChanged(record, status),
    changesChanged: !sameChanges(record.changes, changesSeen(status, "")),
  };
}

/** The change to write, given the record as it is now (under the lease) and what was observed before. */
export function reconciliation(
  current: SandboxRecord,
  status: SandboxdStatusView,
  finished: boolean,
  now: string,
): { to: SandboxState | null; patch: Partial<SandboxRecord> } {
  const patch: Partial<SandboxRecord> = {
    agent: status.agent.state,
    agent_reason: status.agent.reason ?? null,
    last_activity: status.agent.last_activity ?? current.last_activity,
    ...(status.agent.usage ? { usage: status.agent.usage } : {}),
  };
  // The changed files are rewritten only when they differ, so `seen_at` says since when they are so.
  const seen = changesSeen(status, now);
  if (seen && !sameChanges(current.changes, seen)) patch.changes = seen;
  const live = sameTask(current, status) ? status.task : null;
  const task =
    current.task && live
      ? {
          ...current.task,
          state: live.state,
          ...(live.usage ? { usage: live.usage } : {}),
          finished_at: live.finished_at ?? current.task.finished_at,
        }
      : current.task;
  if (task !== current.task) patch.task = task;
  if (finished && current.state === "running" && task) {
    return {
      to: "completed",
      patch: { ...patch, task: { ...task, finished_at: status.task?.finished_at ?? now } },
    };
  }
  return { to: null, patch };
}

function sameTask(record: SandboxRecord, status: SandboxdStatusView): boolean {
  return record.task !== null && status.task !== null && status.task.session_id === record.task.session_id;
}

/** sandboxd reports the record's task in another state, or with other usage, than the record holds. */
function taskObservationChanged(record: SandboxRecord, status: SandboxdStatusView): boolean {
  if (!sameTask(record, status)) return false;
  const live = status.task!;
  return (
    live.state !== record.task!.state ||
    (live.usage !== undefined && JSON.stringify(live.usage) !== JSON.stringify(record.task!.usage))
  );
}

/** task_failed when sandboxd says the record's task failed; null otherwise. */
export function taskFailure(record: SandboxRecord, status: SandboxdStatusView | null): AlpineError | null {
  const task = status?.task;
  if (!task || !record.task || task.session_id !== record.task.session_id) return null;
  if (task.state === "interrupted" && task.error?.reason_code === "budget_reached") {
    return new AlpineError("budget_reached", `sandbox '${record.name}': ${task.error.error}`, {
      session_id: task.session_id,
      reason: task.error.error,
    });
  }
  if (task.state !== "failed" && task.state !== "interrupted") return null;
  return new AlpineError(
    "task_failed",
    `the agent's task ${task.state === "failed" ? "failed" : "was interrupted"} in sandbox '${record.name}'${
      status?.agent.reason ? `: ${status.agent.reason}` : ""
    }`,
    {
      session_id: task.session_id,
      error: task.error ?? null,
    },
  );
}
