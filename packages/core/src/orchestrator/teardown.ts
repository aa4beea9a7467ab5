import { AlpineError, toAlpineError } from "../errors.ts";
import type { Progress } from "../ports.ts";
import type { SandboxRecord } from "../schemas.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import { ignoreFailure, move, reach } from "./context.ts";
import { exitCheckpointToCollect } from "./decisions/exit-checkpoint.ts";
import { teardownBlockers, teardownPlan, unsavedWork } from "./decisions/safety.ts";
import { suspendedTeardown } from "./decisions/suspend.ts";
import { provision } from "./launch.ts";
import { getRecord, probe } from "./reading.ts";
import { withLease } from "./settle.ts";
import { noticeSelfSuspension } from "./suspend.ts";
import type { OrchestratorDeps, TeardownResult } from "./types.ts";

/**
 * `teardown`: destroys a sandbox's runtime. Without --force it refuses while the agent is busy or
 * the runtime does not answer, and checkpoints unsaved work first (docs/durability.md).
 */
export async function teardown(
  deps: OrchestratorDeps,
  name: string,
  opts: { force: boolean },
  progress: Progress,
): Promise<TeardownResult> {
  // A runtime that stopped by suspending itself is recorded so first (not taken for an unreachable one).
  const record = await noticeSelfSuspension(deps, await getRecord(deps, name));
  return withLease(deps, record, "teardown", async (op) => {
    await reach(deps, "teardown.lease_acquired");
    let current = await getRecord(deps, name);
    if (current.state === "destroyed") {
      return { record: current, destroyed: false, checkpoint_id: current.checkpoint?.id ?? null };
    }
    let checkpointId: string | null = null;
    if (current.state === "suspended" && !opts.force && suspendedTeardown(current) === "resume_first") {
      // Work only the stopped runtime holds: brought back, so it is checkpointed as any teardown's.
      progress.step(`resuming suspended sandbox '${name}' to save its work`);
      current = await provision(deps, current, op.id, progress, current.suspension?.from ?? "running");
    }
    if (!opts.force && current.state !== "suspended") {
      const saved = await saveWorkFirst(deps, current, op.id, progress);
      current = saved.record;
      checkpointId = saved.checkpoint_id;
    }
    progress.step("tearing down");
    if (current.state === "new" || current.state === "provisioning") {
      current = await move(deps, current, "error", op.id, "teardown of an unfinished launch");
    }
    if (current.state !== "tearing_down") {
      current = await move(
        deps,
        current,
        "tearing_down",
        op.id,
        opts.force ? "teardown --force" : "teardown",
      );
    }
    await reach(deps, "teardown.tearing_down");
    current = await destroyTornDown(deps, current, op.id);
    return {
      record: current,
      destroyed: true,
      checkpoint_id: checkpointId ?? current.checkpoint?.id ?? null,
    };
  });
}

/**
 * A runtime that got SIGTERM from its platform (a Cloudflare rollout) and whose sandboxd wrote
 * and holds an exit checkpoint (decisions/exit-checkpoint.ts): copies, verifies and records that
 * checkpoint with the ordinary checkpoint code, drops sandboxd's copy (so it exits), and ends the
 * sandbox as a teardown with a checkpoint does: running|completed → saving → tearing_down →
 * destroyed, so the next `alpine launch` resumes from it. Null when no exit checkpoint is held
 * (the probe under the lease decides, not the caller's). A failed copy leaves the sandbox as it
 * was and sandboxd holding its checkpoint, for the next attempt.
 */
export async function collectExitCheckpoint(
  deps: OrchestratorDeps,
  name: string,
  progress: Progress,
): Promise<TeardownResult | null> {
  const record = await getRecord(deps, name);
  return withLease(deps, record, "teardown", async (op) => {
    let current = await getRecord(deps, name);
    const written = exitCheckpointToCollect(current, await probe(deps, current));
    if (!written) return null;
    progress.step("copying the exit checkpoint");
    current = (await saveCheckpoint(deps, current, op.id, "tearing_down", progress, { written })).record;
    await reach(deps, "teardown.checkpointed");
    current = await destroyTornDown(deps, current, op.id);
    return { record: current, destroyed: true, checkpoint_id: written.checkpoint_id };
  });
}

/** tearing_down → destroyed: removes the runtime (→ error when that fails). */
async function destroyTornDown(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  operationId: string,
): Promise<SandboxRecord> {
  try {
    await destroyRuntime(deps, record);
  } catch (err) {
    const error = toAlpineError(err);
    await move(deps, record, "error", operationId, `teardown failed: ${error.reason}`, {
      error: error.toJSON(),
    });
    throw error;
  }
  return move(deps, record, "destroyed", operationId, "runtime removed", {
    runtime: null,
    agent: "unknown",
    error: null,
    suspension: null,
  });
}

/** The safety checks of a teardown without --force: refuses, or checkpoints unsaved work (→ tearing_down). */
async function saveWorkFirst(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  operationId: string,
  progress: Progress,
): Promise<{ record: SandboxRecord; checkpoint_id: string | null }> {
  const { name } = record;
  const found = await probe(deps, record);
  const blockers = teardownBlockers(record, found, null);
  const unsaved = unsavedWork(found.status?.workspace);
  switch (teardownPlan(blockers)) {
    case "refuse_agent_busy":
      throw new AlpineError(
        "teardown_requires_force",
        `the agent in '${name}' is busy; pass --force to stop it anyway`,
        { blockers },
      );
    case "refuse_unreachable":
      throw new AlpineError(
        "teardown_blocked",
        `sandbox '${name}' does not answer, so its work cannot be saved; run \`alpine launch ${name}\` to recover it, or pass --force to drop it`,
        { blockers, ...unsaved, last_checkpoint: record.checkpoint?.id ?? null },
      );
    case "checkpoint_then_destroy":
      try {
        const saved = await saveCheckpoint(deps, record, operationId, "tearing_down", progress);
        await reach(deps, "teardown.checkpointed");
        return { record: saved.record, checkpoint_id: saved.manifest.checkpoint_id };
      } catch (err) {
        const error = toAlpineError(err);
        throw new AlpineError(
          "teardown_blocked",
          `sandbox '${name}' holds unsaved work and checkpointing it failed (${error.message}); nothing was destroyed`,
          { blockers, ...unsaved, cause: error.toJSON() },
        );
      }
    case "destroy":
      return { record, checkpoint_id: null };
  }
}

/** Asks sandboxd to shut down cleanly, then stops and destroys the runtime. */
async function destroyRuntime(deps: OrchestratorDeps, record: SandboxRecord): Promise<void> {
  if (!record.runtime) return;
  const provider = deps.provider(record.provider);
  // A clean shutdown is a courtesy (OpenCode flushes its data); stop() below ends the runtime anyway.
  const endpoint = await provider.endpoint(record.runtime.handle).catch((err: unknown) => {
    ignoreFailure(deps, `finding the runtime of '${record.name}'`)(err);
    return null;
  });
  if (endpoint) {
    await deps
      .connect(endpoint)
      .shutdown()
      .catch(ignoreFailure(deps, `shutting down the sandboxd of '${record.name}'`));
  }
  await provider.stop(record.runtime.handle);
  await reach(deps, "teardown.runtime_stopped");
  await provider.destroy(record.runtime.handle);
  await reach(deps, "teardown.runtime_destroyed");
}
