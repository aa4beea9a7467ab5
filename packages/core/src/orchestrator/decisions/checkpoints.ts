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

/** The oldest checkpoints beyond the newest `keep` (ids oldest first); never `keepId`. */
export function retentionVictims(ids: readonly string[], keep: number, keepId: string): string[] {
  const excess = Math.max(0, ids.length - keep);
  return ids.slice(0, excess).filter((id) => id !== keepId);
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
