import { AlpineError, toAlpineError } from "../errors.ts";
import type { Progress } from "../ports.ts";
import type { SandboxRecord } from "../schemas.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import { ignoreFailure, move, reach } from "./context.ts";
import { teardownBlockers, teardownPlan, unsavedWork } from "./decisions/safety.ts";
import { getRecord, probe } from "./reading.ts";
import { withLease } from "./settle.ts";
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
  const record = await getRecord(deps, name);
  return withLease(deps, record, "teardown", async (op) => {
    await reach(deps, "teardown.lease_acquired");
    let current = await getRecord(deps, name);
    if (current.state === "destroyed") {
      return { record: current, destroyed: false, checkpoint_id: current.checkpoint?.id ?? null };
    }
    let checkpointId: string | null = null;
    if (!opts.force) {
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
    try {
      await destroyRuntime(deps, current);
    } catch (err) {
      const error = toAlpineError(err);
      await move(deps, current, "error", op.id, `teardown failed: ${error.reason}`, {
        error: error.toJSON(),
      });
      throw error;
    }
    current = await move(deps, current, "destroyed", op.id, "runtime removed", {
      runtime: null,
      agent: "unknown",
      error: null,
    });
    return {
      record: current,
      destroyed: true,
      checkpoint_id: checkpointId ?? current.checkpoint?.id ?? null,
    };
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
