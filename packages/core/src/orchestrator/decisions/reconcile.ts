import { AlpineError } from "../../errors.ts";
import type { SandboxState } from "../../lifecycle.ts";
import type { SandboxRecord } from "../../schemas.ts";
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
