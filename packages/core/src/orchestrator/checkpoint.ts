import { AlpineError, toAlpineError } from "../errors.ts";
import type { SandboxState } from "../lifecycle.ts";
import type { CheckpointManifest, Progress } from "../ports.ts";
import type { CheckpointRecord, SandboxRecord } from "../schemas.ts";
import { ignoreFailure, move, nowIso, reach } from "./context.ts";
import {
  artifactMismatch,
  checkpointError,
  checkpointIdFor,
  contentHash,
  retentionVictims,
} from "./decisions/checkpoints.ts";
import { connectTo, getRecord } from "./reading.ts";
import { withLease } from "./settle.ts";
import type { OrchestratorDeps } from "./types.ts";

/** Checkpoints: writing, copying, verifying and keeping them (docs/durability.md). */

export async function checkpoint(
  deps: OrchestratorDeps,
  name: string,
  progress: Progress,
): Promise<{ record: SandboxRecord; manifest: CheckpointManifest }> {
  const record = await getRecord(deps, name);
  return withLease(deps, record, "checkpoint", async (op) => {
    await reach(deps, "checkpoint.lease_acquired");
    const current = await getRecord(deps, name);
    if (current.state !== "running" && current.state !== "completed") {
      throw new AlpineError(
        "sandbox_not_running",
        `sandbox '${name}' is ${current.state}; only a live sandbox can be checkpointed`,
        { state: current.state },
      );
    }
    return saveCheckpoint(deps, current, op.id, current.state, progress);
  });
}

/**
 * running|completed → saving → `then`: has sandboxd write a checkpoint, copies its artifacts into
 * the checkpoint store, re-reads and verifies them, and only then records it as the sandbox's
 * verified checkpoint. A failure leaves the previous verified checkpoint in place.
 *
 * `written`: a checkpoint sandboxd already wrote on its own (its exit checkpoint,
 * decisions/exit-checkpoint.ts) is copied as it is. sandboxd's copy of it is dropped only once
 * the store holds it verified: dropping it lets that sandboxd exit, and after a failure it must
 * stay for the next attempt, as it is the only copy of the work.
 */
export async function saveCheckpoint(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  operationId: string,
  then: SandboxState,
  progress: Progress,
  opts: { written?: CheckpointManifest } = {},
): Promise<{ record: SandboxRecord; manifest: CheckpointManifest }> {
  const back = record.state;
  const { written } = opts;
  const client = await connectTo(deps, record);
  let current = await move(
    deps,
    record,
    "saving",
    operationId,
    written ? `exit checkpoint ${written.checkpoint_id}` : "checkpoint",
  );
  await reach(deps, "checkpoint.saving");
  const checkpointId = written?.checkpoint_id ?? checkpointIdFor(deps.ids.operationId());
  const created_at = written?.created_at ?? nowIso(deps);
  const store = deps.checkpoints;
  // sandboxd's staging copy is only a cache of what the store now holds (or of a failed attempt).
  const dropStaged = () =>
    client
      .deleteCheckpoint(checkpointId)
      .catch(ignoreFailure(deps, `deleting sandboxd's copy of ${checkpointId}`));
  try {
    let manifest: CheckpointManifest;
    if (written) {
      manifest = written;
    } else {
      progress.step("writing checkpoint");
      manifest = await client.checkpoint({ checkpoint_id: checkpointId, created_at });
    }
    if (manifest.checkpoint_id !== checkpointId || manifest.sandbox_id !== record.id) {
      throw new AlpineError("checkpoint_failed", "sandboxd returned a manifest for another checkpoint", {});
    }
    await reach(deps, "checkpoint.written");
    progress.step("copying checkpoint");
    let bytes = 0;
    for (const artifact of manifest.artifacts) {
      const body = await client.checkpointArtifact(checkpointId, artifact.name);
      const stored = await store.putArtifact(record.id, checkpointId, artifact.name, body);
      const mismatch = artifactMismatch(artifact, stored);
      if (mismatch) throw mismatch;
      bytes += stored.bytes;
      await reach(deps, "checkpoint.artifact_stored");
    }
    await store.putManifest(manifest);
    await reach(deps, "checkpoint.manifest_stored");
    progress.step("verifying checkpoint");
    await store.verify(manifest);
    await reach(deps, "checkpoint.verified");
    await dropStaged();
    const verified: CheckpointRecord = {
      id: checkpointId,
      verified: true,
      content_hash: await contentHash(manifest),
      tree_hash: manifest.tree_hash,
      head_commit: manifest.head_commit,
      bytes,
      created_at,
    };
    current = await move(deps, current, then, operationId, `checkpoint ${checkpointId} verified`, {
      checkpoint: verified,
    });
    await applyRetention(deps, record.id, checkpointId);
    return { record: current, manifest };
  } catch (err) {
    // What the failed attempt stored is never recorded; the next settlement or prune removes a leftover.
    await store
      .delete(record.id, checkpointId)
      .catch(ignoreFailure(deps, `deleting the failed checkpoint ${checkpointId}`, "warn"));
    if (!written) await dropStaged();
    const error = toAlpineError(err);
    await move(deps, current, back, operationId, `checkpoint failed: ${error.reason}`);
    throw checkpointError(error, record.name);
  }
}

/** Keeps the newest `durability.keep_checkpoints` checkpoints of a sandbox. */
async function applyRetention(deps: OrchestratorDeps, sandboxId: string, keepId: string): Promise<void> {
  const ids = await deps.checkpoints.list(sandboxId);
  for (const id of retentionVictims(ids, deps.config.durability.keep_checkpoints, keepId)) {
    // An old checkpoint that stays is only space: the next checkpoint's retention tries again.
    await deps.checkpoints
      .delete(sandboxId, id)
      .catch(ignoreFailure(deps, `deleting the old checkpoint ${id}`, "warn"));
  }
}

/** The manifest of a checkpoint, re-verified against its stored artifacts. */
export async function verifiedManifest(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  checkpointId: string,
): Promise<CheckpointManifest> {
  const manifest = await deps.checkpoints.getManifest(record.id, checkpointId);
  if (!manifest) {
    throw new AlpineError(
      "checkpoint_missing",
      `checkpoint ${checkpointId} of '${record.name}' is not in the store`,
      {
        checkpoint_id: checkpointId,
      },
    );
  }
  await deps.checkpoints.verify(manifest);
  return manifest;
}
