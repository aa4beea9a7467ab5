import { AlpineError } from "../../errors.ts";
import type { CheckpointManifest } from "../../ports.ts";
import type { CheckpointRecord } from "../../schemas.ts";

/** Which stored checkpoints stay (docs/durability.md, "Where it lives and how it is verified"). */

/** A checkpoint's id, derived from the operation that makes it. */
export function checkpointIdFor(operationId: string): string {
  return `ckpt_${operationId.replace(/^op_/, "")}`;
}

/**
 * Stored checkpoints an interrupted checkpoint left: every one other than the recorded verified
 * checkpoint that is newer than it, has no manifest, or exists while none is verified.
 */
export function unverifiedCheckpoints(
  stored: readonly { id: string; manifest: Pick<CheckpointManifest, "created_at"> | null }[],
  verified: Pick<CheckpointRecord, "id" | "created_at"> | null,
): string[] {
  return stored
    .filter(({ id, manifest }) => {
      if (id === verified?.id) return false;
      return !verified || !manifest || manifest.created_at > verified.created_at;
    })
    .map(({ id }) => id);
}

/**
 * The oldest checkpoints beyond the newest `keep` (ids oldest first); never `keepId`, and never one
 * that a kept checkpoint builds on (`dependsOn`: id → the checkpoint ids its manifest's
 * depends_on names; a checkpoint without an entry builds on none).
 */
export function retentionVictims(
  ids: readonly string[],
  keep: number,
  keepId: string,
  dependsOn: ReadonlyMap<string, readonly string[]> = new Map(),
): string[] {
  const excess = Math.max(0, ids.length - keep);
  const kept = new Set([...ids.slice(excess), keepId]);
  // depends_on lists a checkpoint's whole chain, so one pass over the kept ones is the closure.
  for (const id of [...kept]) for (const dep of dependsOn.get(id) ?? []) kept.add(dep);
  return ids.slice(0, excess).filter((id) => !kept.has(id));
}

/**
 * Most checkpoints in one chain (a self-contained one and those built on it). A longer chain
 * would keep old checkpoints from being pruned and make a restore read more bundles.
 */
export const MAX_CHAIN_CHECKPOINTS = 8;

/**
 * Whether the next checkpoint builds on `latest` (the sandbox's verified checkpoint, its whole
 * chain verified in the store just now: `chainVerified`), or is self-contained as far as
 * checkpoints go.
 */
export function chainParent(
  latest: CheckpointManifest | null,
  chainVerified: boolean,
  maxChain: number = MAX_CHAIN_CHECKPOINTS,
): CheckpointManifest | null {
  if (!latest || !chainVerified) return null;
  if (!latest.artifacts.some((a) => a.name === "workspace.bundle")) return null;
  const links = (latest.depends_on?.checkpoints.length ?? 0) + 1;
  return links + 1 <= maxChain ? latest : null;
}

/**
 * The links a restore of `manifest` needs, oldest first, checked against what the store holds:
 * each must exist (checkpoint_missing naming it) and its workspace.bundle must be the one
 * `manifest` recorded (checkpoint_checksum_mismatch naming it).
 */
export function chainProblem(
  manifest: CheckpointManifest,
  links: readonly { checkpoint_id: string; manifest: CheckpointManifest | null }[],
): AlpineError | null {
  const wanted = manifest.depends_on?.checkpoints ?? [];
  for (const [i, want] of wanted.entries()) {
    const link = links[i];
    const got = link?.checkpoint_id === want.checkpoint_id ? link.manifest : null;
    if (!got) {
      return new AlpineError(
        "checkpoint_missing",
        `checkpoint ${manifest.checkpoint_id} builds on checkpoint ${want.checkpoint_id}, which is not in the store`,
        {
          checkpoint_id: want.checkpoint_id,
          artifact: "workspace.bundle",
          needed_by: manifest.checkpoint_id,
        },
      );
    }
    const bundle = got.artifacts.find((a) => a.name === "workspace.bundle");
    if (bundle?.sha256 !== want.sha256) {
      return new AlpineError(
        "checkpoint_checksum_mismatch",
        `checkpoint ${want.checkpoint_id}: artifact workspace.bundle is not the one ${manifest.checkpoint_id} builds on`,
        {
          checkpoint_id: want.checkpoint_id,
          artifact: "workspace.bundle",
          expected: want.sha256,
          got: bundle?.sha256 ?? null,
        },
      );
    }
  }
  return null;
}

/** The artifact as stored must be the artifact sandboxd wrote. */
export function artifactMismatch(
  expected: { name: string; sha256: string; bytes: number },
  stored: { sha256: string; bytes: number },
): AlpineError | null {
  if (stored.sha256 === expected.sha256 && stored.bytes === expected.bytes) return null;
  return new AlpineError(
    "checkpoint_checksum_mismatch",
    `checkpoint artifact ${expected.name} changed in transit`,
    {
      artifact: expected.name,
      expected: expected.sha256,
      got: stored.sha256,
    },
  );
}

/** What a failed checkpoint reports: failures without a reason of their own become checkpoint_failed. */
export function checkpointError(error: AlpineError, name: string): AlpineError {
  if (error.reason === "internal_error" || error.reason === "sandbox_unavailable") {
    return new AlpineError("checkpoint_failed", `checkpoint of '${name}' failed: ${error.message}`, {
      cause: error.toJSON(),
    });
  }
  return error;
}

/** A hash of a checkpoint's content (workspace tree, history head, branch), not of its metadata. */
export async function contentHash(manifest: CheckpointManifest): Promise<string> {
  const text = `tree ${manifest.tree_hash}\nhead ${manifest.head_commit}\nbranch ${manifest.branch}\n`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return `sha256:${[...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}
