import { AlpineError } from "../errors.ts";
import type { SandboxRecord } from "../schemas.ts";
import { move, nowIso, update } from "./context.ts";
import { type BudgetRaise, parseBudgetRaise, raisedBudget } from "./decisions/budget.ts";
import { summarise } from "./decisions/export.ts";
import { observeStatus, reconciliation, taskFailure } from "./decisions/reconcile.ts";
import { connectTo, getRecord, probe } from "./reading.ts";
import { isBusy, settle, withLease } from "./settle.ts";
import { noticeSelfSuspension } from "./suspend.ts";
import type { OrchestratorDeps, Probe } from "./types.ts";

/** Tasks: handing the agent a prompt, following it to its end, and recording what sandboxd saw. */

/** Hands a prompt to the agent of a live sandbox (called holding its lease); completed → running. */
export async function sendTask(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  prompt: string,
  operationId: string,
  opts: { newSession?: boolean; raise?: BudgetRaise | null } = {},
): Promise<{ record: SandboxRecord; session_id: string }> {
  const client = await connectTo(deps, record);
  const raise = opts.raise ?? null;
  const raised = raise
    ? {
        tokens: (record.budget_raise?.tokens ?? 0) + raise.tokens,
        cost: (record.budget_raise?.cost ?? 0) + raise.cost,
      }
    : record.budget_raise;
  // The limits as configured now plus every raise given: raising the config also lets it go on.
  const budget = raisedBudget(deps.config.sandbox.budget, raised);
  // sandboxd picks the session: the one the person last used, in the UI or by a task
  // (docs/opencode.md, "One conversation"); the record's is only its fallback.
  const { session_id } = await client.task({
    prompt,
    ...(opts.newSession ? { new_session: true } : {}),
    ...(record.task?.session_id ? { fallback_session_id: record.task.session_id } : {}),
    budget,
  });
  const at = nowIso(deps);
  const task = {
    prompt_summary: summarise(prompt),
    session_id,
    started_at: at,
    finished_at: null,
    state: "running" as const,
  };
  const patch = {
    task,
    agent: "busy" as const,
    agent_reason: null,
    last_activity: at,
    ...(raised ? { budget_raise: raised } : {}),
  };
  const next =
    record.state === "completed"
      ? await move(deps, record, "running", operationId, "new task", patch)
      : await update(deps, record, patch);
  return { record: next, session_id };
}

export async function task(
  deps: OrchestratorDeps,
  name: string,
  prompt: string,
  opts: { newSession?: boolean; budget?: string } = {},
): Promise<{ record: SandboxRecord; session_id: string }> {
  const record = await getRecord(deps, name);
  if (!prompt.trim()) throw new AlpineError("usage_invalid", "the task prompt is empty");
  const raise = opts.budget !== undefined ? parseBudgetRaise(opts.budget) : null;
  return withLease(deps, record, "task", async (op) => {
    const current = await getRecord(deps, name);
    if (current.state !== "running" && current.state !== "completed") {
      throw new AlpineError(
        "sandbox_not_running",
        `sandbox '${name}' is ${current.state}; it cannot take a task`,
        {
          state: current.state,
        },
      );
    }
    return sendTask(deps, current, prompt, op.id, { newSession: opts.newSession, raise });
  });
}

/**
 * Brings the record in line with what sandboxd observed (decisions/reconcile.ts). Skipped (not an
 * error) while another operation holds the lease.
 */
export async function reconcile(
  deps: OrchestratorDeps,
  given: SandboxRecord,
  found: Probe,
): Promise<SandboxRecord> {
  // First what a command that died mid-way left behind (a no-op for everything else).
  const record = await settle(deps, given);
  // A runtime that stopped by suspending itself (local, docker) is recorded as suspended.
  if (found.state === "unavailable") return noticeSelfSuspension(deps, record);
  if (found.state !== "ok" || !found.status) return record;
  const status = found.status;
  const { finished, agentChanged, changesChanged } = observeStatus(record, status);
  if (!finished && !agentChanged && !changesChanged) return record;
  try {
    return await withLease(deps, record, "reconcile", async (op) => {
      const current = await getRecord(deps, record.name);
      const change = reconciliation(current, status, finished, nowIso(deps));
      return change.to
        ? move(deps, current, change.to, op.id, "task completed", change.patch)
        : update(deps, current, change.patch);
    });
  } catch (err) {
    if (isBusy(err)) return record;
    throw err;
  }
}

/**
 * How waitForTask paces its polls (each one a probe of sandboxd). `pollMs` is a fixed pause or
 * one computed from the time waited so far; `maxPolls` bounds the number of probes (the control
 * plane pays a subrequest per probe). At `timeoutMs` or `maxPolls` it returns the record as it is.
 */
export interface TaskWaitOptions {
  pollMs?: number | ((waitedMs: number) => number);
  timeoutMs?: number;
  maxPolls?: number;
}

/** Waits until the current task finishes; the sandbox is then completed (or task_failed is thrown). */
export async function waitForTask(
  deps: OrchestratorDeps,
  name: string,
  opts: TaskWaitOptions,
): Promise<SandboxRecord> {
  const started = deps.clock.now();
  const deadline = started + (opts.timeoutMs ?? 24 * 3600_000);
  const pause = opts.pollMs ?? 500;
  for (let polls = 1; ; polls++) {
    let record = await getRecord(deps, name);
    const found = await probe(deps, record);
    if (found.state === "unavailable")
      throw found.error ?? new AlpineError("sandbox_unavailable", "unavailable");
    record = await reconcile(deps, record, found);
    const failure = taskFailure(record, found.status);
    if (failure) throw failure;
    if (record.state !== "running") return record;
    if (deps.clock.now() > deadline || polls >= (opts.maxPolls ?? Number.POSITIVE_INFINITY)) return record;
    await deps.clock.sleep(typeof pause === "number" ? pause : pause(deps.clock.now() - started));
  }
}
