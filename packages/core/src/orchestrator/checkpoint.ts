import { AlpineError, toAlpineError } from "../errors.ts";
import type { SandboxState } from "../lifecycle.ts";
import type { CheckpointManifest, Progress } from "../ports.ts";
import type { CheckpointRecord, SandboxRecord } from "../schemas.ts";
import { ignoreFailure, move, nowIso, reach } from "./context.ts";
import {
  artifactMismatch,
  chainParent,
  chainProblem,
  checkpointError,
  checkpointIdFor,
  contentHash,
  retentionVictims,
} from "./decisions/checkpoints.ts";
import { connectTo, getRecord } from "./reading.ts";
import { withLease } from "./settle.ts";
import type { GitCredentials, OrchestratorDeps } from "./types.ts";

/** Checkpoints: writing, copying, verifying and keeping them (docs/durability.md). */

export async function checkpoint(
  deps: OrchestratorDeps,
  name: string,
  progress: Progress,
  opts: {
    /** Brings a suspended sandbox back first (the orchestrator's resume); returns its record. */
    resumeFirst?: () => Promise<SandboxRecord>;
  } = {},
): Promise<{ record: SandboxRecord; manifest: CheckpointManifest }> {
  let record = await getRecord(deps, name);
  // Asked first, while the resume check and the lease run: git's credential helper is a process
  // of its own (≈0.1 s), and the checkpoint request waits for it.
  const credentials = credentialsOf(deps, record.repo);
  if (opts.resumeFirst) record = await opts.resumeFirst();
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
    return saveCheckpoint(deps, current, op.id, current.state, progress, { credentials });
  });
}

/** The host's credentials for `repo`, or null (then the remote is not asked; see saveCheckpoint). */
function credentialsOf(deps: OrchestratorDeps, repo: string): Promise<GitCredentials | null> {
  return deps.credentialsFor(repo).catch((err: unknown) => {
    // Without them the remote is not asked; the checkpoint then does not build on it.
    ignoreFailure(deps, `reading the credentials for ${repo}`)(err);
    return null;
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
  opts: {
    written?: CheckpointManifest;
    /** The repo's credentials, when the caller asked for them already. */
    credentials?: Promise<GitCredentials | null>;
  } = {},
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
      const [parent, credentials] = await Promise.all([
        latestChainParent(deps, record),
        opts.credentials ?? credentialsOf(deps, record.repo),
      ]);
      progress.step(parent ? `writing checkpoint (on ${parent.checkpoint_id})` : "writing checkpoint");
      manifest = await client.checkpoint({
        checkpoint_id: checkpointId,
        created_at,
        ...(parent ? { parent } : {}),
        ...(credentials ? { credentials } : {}),
      });
    }
    if (manifest.checkpoint_id !== checkpointId || manifest.sandbox_id !== record.id) {
      throw new AlpineError("checkpoint_failed", "sandboxd returned a manifest for another checkpoint", {});
    }
    await reach(deps, "checkpoint.written");
    progress.step("copying checkpoint");
    // The artifacts side by side (each its own request and file); all must arrive intact.
    const copies = await Promise.allSettled(
      manifest.artifacts.map(async (artifact) => {
        const body = await client.checkpointArtifact(checkpointId, artifact.name);
        const stored = await store.putArtifact(record.id, checkpointId, artifact.name, body);
        const mismatch = artifactMismatch(artifact, stored);
        if (mismatch) throw mismatch;
        await reach(deps, "checkpoint.artifact_stored");
        return stored.bytes;
      }),
    );
    // Every copy ended before a failure is thrown: none still writes while the catch cleans up.
    const failed = copies.find((c) => c.status === "rejected");
    if (failed) throw failed.reason;
    const bytes = copies.reduce((n, c) => n + (c.status === "fulfilled" ? c.value : 0), 0);
    await store.putManifest(manifest);
    await reach(deps, "checkpoint.manifest_stored");
    progress.step("verifying checkpoint");
    await store.verify(manifest);
    // The chain it builds on is in the store as it recorded it (checked again at every restore).
    await verifiedChain(deps, manifest, { rehash: false });
    await reach(deps, "checkpoint.verified");
    // Beside the recording: the store holds it verified, so sandboxd's copy is no longer needed
    // (dropStaged never throws).
    const dropped = dropStaged();
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
    await dropped;
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

/**
 * The sandbox's verified checkpoint, when the next checkpoint may build on it: it and every
 * checkpoint it builds on are in the store and verify now (a pruned or damaged link makes the
 * next checkpoint self-contained instead, so it is found here and never at a restore).
 */
async function latestChainParent(
  deps: OrchestratorDeps,
  record: SandboxRecord,
): Promise<CheckpointManifest | null> {
  const latest = record.checkpoint?.verified ? record.checkpoint : null;
  if (!latest) return null;
  try {
    const manifest = await deps.checkpoints.getManifest(record.id, latest.id);
    if (!manifest) return chainParent(null, false);
    await deps.checkpoints.verify(manifest);
    await verifiedChain(deps, manifest, { rehash: true });
    return chainParent(manifest, true);
  } catch (err) {
    deps.log?.warn(
      `checkpoint ${latest.id} or one it builds on does not verify; the next checkpoint is self-contained`,
      {
        error: toAlpineError(err).toJSON(),
      },
    );
    return chainParent(null, false);
  }
}

/**
 * The earlier checkpoints `manifest` builds on, oldest first, each in the store as `manifest`
 * recorded it; with `rehash`, each one's artifacts are re-read and checked too. Throws
 * checkpoint_missing / checkpoint_checksum_mismatch naming the link.
 */
export async function verifiedChain(
  deps: OrchestratorDeps,
  manifest: CheckpointManifest,
  opts: { rehash: boolean },
): Promise<CheckpointManifest[]> {
  const wanted = manifest.depends_on?.checkpoints ?? [];
  const links = await Promise.all(
    wanted.map(async (w) => ({
      checkpoint_id: w.checkpoint_id,
      manifest: await deps.checkpoints.getManifest(manifest.sandbox_id, w.checkpoint_id),
    })),
  );
  const problem = chainProblem(manifest, links);
  if (problem) throw problem;
  const chain = links.map((l) => l.manifest!);
  if (opts.rehash) for (const link of chain) await deps.checkpoints.verify(link);
  return chain;
}

/** Keeps the newest `durability.keep_checkpoints` checkpoints of a sandbox, and what they build on. */
async function applyRetention(deps: OrchestratorDeps, sandboxId: string, keepId: string): Promise<void> {
  const ids = await deps.checkpoints.list(sandboxId);
  const dependsOn = new Map<string, string[]>();
  for (const id of ids) {
    const manifest = await deps.checkpoints.getManifest(sandboxId, id);
    // Unreadable: keep everything rather than prune a link something may need.
    if (!manifest) return;
    dependsOn.set(
      id,
      (manifest.depends_on?.checkpoints ?? []).map((c) => c.checkpoint_id),
    );
  }
  for (const id of retentionVictims(ids, deps.config.durability.keep_checkpoints, keepId, dependsOn)) {
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

/** As verifiedManifest, with the chain it builds on (oldest first), every link re-verified. */
export async function verifiedManifestChain(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  checkpointId: string,
): Promise<{ manifest: CheckpointManifest; chain: CheckpointManifest[] }> {
  const manifest = await verifiedManifest(deps, record, checkpointId);
  return { manifest, chain: await verifiedChain(deps, manifest, { rehash: true }) };
}
