import type { AgentState } from "../../schemas.ts";
import type { StatusView } from "../../views.ts";

/**
 * `alpine wait` (and `task --wait`): what one look at a sandbox's status means for a wait. Pure:
 * the loop that polls is operations/wait.ts; the exit codes are docs/cli.md's "alpine wait" table.
 */

/** What a wait is for: the agent finished (`done`), it asks something (`input`), or either of those or an end (`any`). */
export const WAIT_FOR = ["done", "input", "any"] as const;
export type WaitFor = (typeof WAIT_FOR)[number];

/** Why a wait on one sandbox stopped. */
export const WAIT_OUTCOMES = ["done", "input", "error", "budget", "gone", "timeout"] as const;
export type WaitOutcome = (typeof WAIT_OUTCOMES)[number];

/**
 * The exit code of each outcome when it is not what was waited for (0 when it is). 1 and 2 stay
 * alpine's error codes (docs/errors.md): a wait that cannot start (no such sandbox, bad flag)
 * exits with them and prints the error object.
 */
export const WAIT_EXIT_CODES: Readonly<Record<WaitOutcome, number>> = {
  error: 3,
  input: 4,
  budget: 5,
  timeout: 6,
  gone: 7,
  // `--for input` and the agent finished without asking.
  done: 8,
};

/** When several sandboxes stop differently, the exit code is that of the first outcome of this list that occurred. */
const EXIT_PRECEDENCE: readonly WaitOutcome[] = ["gone", "error", "budget", "input", "done", "timeout"];

/** Sandbox states in which the agent will not go on until someone launches it again. */
const ENDED_STATES = new Set(["tearing_down", "destroyed", "error"]);

/** How long a live sandbox's sandboxd may not answer before its wait ends as `gone`. */
export const WAIT_UNAVAILABLE_GRACE_MS = 60_000;

/** The fields of `alpine status` a wait reads; `reason` is the agent's reason where sandboxd reports one. */
export type WaitStatus = Pick<StatusView, "name" | "state" | "task" | "error"> & {
  runtime: Pick<StatusView["runtime"], "probe_state" | "agent"> & { reason?: string | null };
};

export interface WaitVerdict {
  outcome: WaitOutcome;
  /** One line a person reads: why the wait stopped. */
  reason: string;
}

/**
 * The verdict for one status, or null to keep waiting. It does not depend on `--for`: every
 * outcome ends the wait (an agent that asks will not finish until answered, one that finished will
 * not ask); `--for` only decides which outcomes exit 0. `unavailableForMs`: how long sandboxd has
 * not answered (0 when it answered).
 */
export function waitVerdict(s: WaitStatus, unavailableForMs = 0): WaitVerdict | null {
  const agentReason = s.runtime.reason ?? null;
  if (ENDED_STATES.has(s.state)) {
    const why = s.error?.error ? `: ${s.error.error}` : "";
    return { outcome: "gone", reason: `the sandbox is ${s.state}${why}` };
  }
  if (s.state === "completed") return { outcome: "done", reason: doneReason(s) };
  if (s.runtime.probe_state === "unavailable") {
    if (unavailableForMs < WAIT_UNAVAILABLE_GRACE_MS) return null;
    return {
      outcome: "gone",
      reason: `sandboxd has not answered for ${Math.round(unavailableForMs / 1000)} s${s.error?.error ? ` (${s.error.error})` : ""}`,
    };
  }
  if (s.runtime.probe_state === "not_running" && s.state !== "running" && s.state !== "saving") {
    return { outcome: "gone", reason: `the sandbox is ${s.state} and its runtime is not running` };
  }
  if (s.runtime.probe_state !== "ok") return null;
  const agent: AgentState = s.runtime.agent;
  if (agent === "error" || s.task?.state === "failed") {
    return { outcome: "error", reason: agentReason ?? taskError(s) ?? "the agent's task failed" };
  }
  if (agent === "budget") return { outcome: "budget", reason: agentReason ?? "the agent reached its budget" };
  if (agent === "needs_input") {
    return {
      outcome: "input",
      reason: agentReason ?? "the agent is waiting for an answer (open it with `alpine open`)",
    };
  }
  // A task sandboxd no longer knows (a resumed sandbox) counts as done once the record says it finished.
  const taskOver =
    s.task === null ||
    s.task.state === "completed" ||
    (s.task.state === "unknown" && s.task.finished_at !== null);
  if (agent === "idle" && taskOver) {
    return { outcome: "done", reason: doneReason(s) };
  }
  // busy, retry, unknown, or idle before sandboxd has the task: not there yet.
  return null;
}

function doneReason(s: WaitStatus): string {
  return s.task
    ? `the agent finished its task: ${s.task.prompt_summary}`
    : "the agent is idle (no task was given)";
}

function taskError(s: WaitStatus): string | null {
  return s.error?.error ?? null;
}

/** Whether an outcome is what `--for` asked for (exit 0). */
export function waitSatisfied(outcome: WaitOutcome, waitFor: WaitFor): boolean {
  if (waitFor === "done") return outcome === "done";
  if (waitFor === "input") return outcome === "input";
  return outcome === "done" || outcome === "input";
}

/** The command's exit code for the outcomes of every sandbox waited on. */
export function waitExitCode(outcomes: readonly WaitOutcome[], waitFor: WaitFor): number {
  const unmet = new Set(outcomes.filter((o) => !waitSatisfied(o, waitFor)));
  for (const o of EXIT_PRECEDENCE) if (unmet.has(o)) return WAIT_EXIT_CODES[o];
  return 0;
}
