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
    agentChanged: status.agent.state !== record.agent || status.agent.last_activity !== record.last_activity,
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
    last_activity: status.agent.last_activity ?? current.last_activity,
  };
  if (finished && current.state === "running" && current.task) {
    return {
      to: "completed",
      patch: { ...patch, task: { ...current.task, finished_at: status.task?.finished_at ?? now } },
    };
  }
  return { to: null, patch };
}

/** task_failed when sandboxd says the record's task failed; null otherwise. */
export function taskFailure(record: SandboxRecord, status: SandboxdStatusView | null): AlpineError | null {
  const task = status?.task;
  if (!task || !record.task || task.session_id !== record.task.session_id || task.state !== "failed")
    return null;
  return new AlpineError("task_failed", `the agent's task failed in sandbox '${record.name}'`, {
    session_id: task.session_id,
    error: task.error ?? null,
  });
}
