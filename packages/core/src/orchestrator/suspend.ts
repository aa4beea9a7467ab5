import { AlpineError, toAlpineError } from "../errors.ts";
import type { Progress } from "../ports.ts";
import { providerDescriptor } from "../provider-kinds.ts";
import type { SandboxRecord, SuspensionRecord } from "../schemas.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import { ignoreFailure, move, nowIso } from "./context.ts";
import {
  checkpointBeforeSuspend,
  idleVerdict,
  needsResume,
  SUSPENDABLE_STATES,
  selfSuspension,
  suspendAfterMs,
} from "./decisions/suspend.ts";
import { provision } from "./launch.ts";
import { getRecord, probe } from "./reading.ts";
import { isBusy, withLease } from "./settle.ts";
import type { OrchestratorDeps } from "./types.ts";

/**
 * Scale-to-zero (docs/durability.md, "Suspension"): suspending an idle sandbox, noticing one whose
 * sandboxd suspended itself, and resuming a suspended one for a command that needs it.
 */

/** Whether the sandbox's provider keeps its workspace while its runtime is stopped (local, docker). */
function keepsWorkspace(record: Pick<SandboxRecord, "provider">): boolean {
  return providerDescriptor(record.provider).persistent_workspace;
}

/**
 * A sandbox of a provider that keeps disks suspends itself: its sandboxd, idle long enough, stops
 * OpenCode, writes a last log line saying so and exits (sandboxd/src/idle-suspend.ts). The first
 * command that looks at the record afterwards (status, list, any command that needs the runtime)
 * finds the runtime stopped and that line, and records `suspended` under a lease. Returns the
 * record as it now is (unchanged when the runtime runs, or did not stop by suspending itself).
 */
export async function noticeSelfSuspension(
  deps: OrchestratorDeps,
  record: SandboxRecord,
): Promise<SandboxRecord> {
  if (!SUSPENDABLE_STATES.includes(record.state) || !record.runtime || !keepsWorkspace(record)) return record;
  const provider = deps.provider(record.provider);
  const handle = record.runtime.handle;
  // A runtime that answers is not suspended; only a stopped (or stopping) one has its log read.
  // Its health answer says so without the workspace scan of a full status (a checkpoint or task
  // of a large work tree waited for that scan first).
  const endpoint = await provider.endpoint(handle).catch(() => null);
  if (endpoint) {
    const answers = await deps
      .connect(endpoint, { timeoutMs: 5_000 })
      .health()
      .then(
        () => true,
        () => false,
      );
    if (answers) return record;
  }
  const lines = await provider.logs(handle, { tail: 200 }).catch((err: unknown) => {
    ignoreFailure(deps, `reading the log of '${record.name}'`)(err);
    return [] as string[];
  });
  const said = selfSuspension(lines);
  if (!said) return record;
  // Said so and closed its API, but still stopping OpenCode: recorded once its process is gone.
  if (endpoint && !(await stoppedWithin(deps, record, STOPPING_WAIT_MS))) return record;
  try {
    return await withLease(deps, record, "reconcile", async (op) => {
      const current = await getRecord(deps, record.name);
      if (!SUSPENDABLE_STATES.includes(current.state)) return current;
      const suspension: SuspensionRecord = {
        at: said.at || nowIso(deps),
        saved: "kept_workspace",
        disk_bytes: said.disk_bytes,
        workspace: said.workspace,
        from: current.state === "completed" ? "completed" : "running",
      };
      return move(
        deps,
        current,
        "suspended",
        op.id,
        `suspended itself after ${Math.round(said.idle_ms / 1000)} s idle`,
        { suspension },
      );
    });
  } catch (err) {
    // Another command holds it: that one (or the next) records the suspension.
    if (isBusy(err)) return record;
    throw err;
  }
}

/** How long a command waits for a sandboxd that announced its suspension to finish stopping. */
const STOPPING_WAIT_MS = 30_000;

async function stoppedWithin(deps: OrchestratorDeps, record: SandboxRecord, ms: number): Promise<boolean> {
  if (!record.runtime) return true;
  const provider = deps.provider(record.provider);
  const deadline = deps.clock.now() + ms;
  while (deps.clock.now() < deadline) {
    if (!(await provider.endpoint(record.runtime.handle).catch(() => null))) return true;
    await deps.clock.sleep(250);
  }
  return false;
}

/** noticeSelfSuspension for every sandbox of the store (`list`). */
export async function noticeSelfSuspensions(deps: OrchestratorDeps): Promise<SandboxRecord[]> {
  const records = await deps.store.list();
  return Promise.all(records.map((r) => noticeSelfSuspension(deps, r)));
}

/**
 * Brings a suspended sandbox back before a command that needs its runtime (task, open, diff,
 * export, checkpoint): suspended → provisioning → the state it was suspended from, on its kept
 * workspace or from its verified checkpoint (as a launch would). A no-op for any other state.
 */
export async function resume(
  deps: OrchestratorDeps,
  name: string,
  progress: Progress,
): Promise<SandboxRecord> {
  let record = await noticeSelfSuspension(deps, await getRecord(deps, name));
  if (!needsResume(record.state)) return record;
  progress.step(`resuming suspended sandbox '${name}'`);
  return withLease(deps, record, "launch", async (op) => {
    record = await getRecord(deps, name);
    if (!needsResume(record.state)) return record;
    return provision(deps, record, op.id, progress, record.suspension?.from ?? "running");
  });
}

export type SuspendResult =
  | { suspended: true; record: SandboxRecord }
  | { suspended: false; record: SandboxRecord; why: string };

/**
 * Suspends a sandbox whose agent has been idle for sandbox.suspend_after_minutes (the control
 * plane's alarm; on a provider that keeps disks sandboxd does it by itself). Holding the lease, it
 * asks sandboxd again: anything of a busy agent keeps it. Unsaved work is checkpointed (verified)
 * first where the disk dies with the runtime; then the runtime is stopped, its resources kept.
 */
export async function suspend(
  deps: OrchestratorDeps,
  name: string,
  opts: { lastRequestAt?: number; requestsInFlight?: number },
  progress: Progress,
): Promise<SuspendResult> {
  const record = await getRecord(deps, name);
  return withLease(deps, record, "suspend", async (op) => {
    let current = await getRecord(deps, name);
    const found = await probe(deps, current);
    const status = found.status;
    if (found.state !== "ok" || !status) {
      return { suspended: false, record: current, why: "the runtime does not answer" };
    }
    const lastActivity = Math.max(
      opts.lastRequestAt ?? 0,
      Date.parse(status.agent.last_activity ?? current.last_activity ?? current.updated_at) || 0,
    );
    const verdict = idleVerdict({
      state: current.state,
      agent: status.agent.state,
      taskRunning: status.task?.state === "running",
      requestsInFlight: opts.requestsInFlight ?? 0,
      lastActivityMs: lastActivity,
      nowMs: deps.clock.now(),
      afterMs: suspendAfterMs(deps.config.sandbox),
    });
    if (!verdict.suspend) return { suspended: false, record: current, why: verdict.why };
    const from = current.state === "completed" ? "completed" : "running";
    // Checkpointed unless both the kind and the provider here keep the disk (a Container never does).
    const keeps =
      keepsWorkspace(current) && (await deps.provider(current.provider).capabilities()).persistent_workspace;
    let saved: SuspensionRecord["saved"] = "kept_workspace";
    let diskBytes: number | null = null;
    if (!keeps) {
      if (checkpointBeforeSuspend(current.checkpoint, status.workspace)) {
        current = (await saveCheckpoint(deps, current, op.id, current.state, progress)).record;
      }
      if (current.checkpoint?.verified) {
        saved = "checkpoint";
        diskBytes = current.checkpoint.bytes;
      } else if (status.workspace?.dirty || (status.workspace?.ahead ?? 0) > 0) {
        // Unsaved work with nowhere to keep it: never stopped.
        throw new AlpineError("checkpoint_failed", `the work of '${name}' could not be saved; not suspended`);
      }
    }
    progress.step("stopping the runtime");
    const provider = deps.provider(current.provider);
    if (current.runtime) {
      const endpoint = await provider.endpoint(current.runtime.handle).catch(() => null);
      if (endpoint) {
        await deps
          .connect(endpoint)
          .shutdown()
          .catch(ignoreFailure(deps, `shutting down the sandboxd of '${name}'`));
      }
      try {
        await provider.stop(current.runtime.handle);
      } catch (err) {
        // Still running: the record must not say suspended.
        const error = toAlpineError(err);
        return { suspended: false, record: current, why: `stopping failed: ${error.message}` };
      }
    }
    const ws = status.workspace;
    const suspension: SuspensionRecord = {
      at: nowIso(deps),
      saved,
      disk_bytes: diskBytes,
      workspace: ws ? { dirty: ws.dirty, ahead: ws.ahead, tree_hash: ws.tree_hash } : null,
      from,
    };
    current = await move(
      deps,
      current,
      "suspended",
      op.id,
      `idle ${Math.round(verdict.idleForMs / 1000)} s: suspended`,
      { suspension, agent: status.agent.state },
    );
    return { suspended: true, record: current };
  });
}
