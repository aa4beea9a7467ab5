import { AlpineError, type CheckpointManifest, type CheckpointStore } from "../../src/index.ts";
import { readAll, sha256Hex, streamOf } from "./bytes.ts";

/**
 * Checkpoints in memory. putArtifact hashes what it received; verify re-hashes every stored
 * artifact against the manifest, as the local and R2 stores do. `corrupt` damages a stored one.
 */
export class MemoryCheckpointStore implements CheckpointStore {
  /** sandbox id → checkpoint id (insertion order = oldest first) → artifacts and manifest. */
  readonly sandboxes = new Map<
    string,
    Map<string, { artifacts: Map<string, Uint8Array>; manifest: CheckpointManifest | null }>
  >();
  readonly deleted: string[] = [];
  readonly failDelete = new Set<string>();
  pruned = 0;

  private entry(sandboxId: string, checkpointId: string) {
    const sandbox = this.sandboxes.get(sandboxId) ?? new Map();
    this.sandboxes.set(sandboxId, sandbox);
    const entry = sandbox.get(checkpointId) ?? { artifacts: new Map<string, Uint8Array>(), manifest: null };
    sandbox.set(checkpointId, entry);
    return entry;
  }

  async putArtifact(
    sandboxId: string,
    checkpointId: string,
    name: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<{ sha256: string; bytes: number }> {
    const bytes = await readAll(body);
    this.entry(sandboxId, checkpointId).artifacts.set(name, bytes);
    return { sha256: await sha256Hex(bytes), bytes: bytes.length };
  }

  async putManifest(manifest: CheckpointManifest): Promise<void> {
    this.entry(manifest.sandbox_id, manifest.checkpoint_id).manifest = structuredClone(manifest);
  }

  async getManifest(sandboxId: string, checkpointId: string): Promise<CheckpointManifest | null> {
    const manifest = this.sandboxes.get(sandboxId)?.get(checkpointId)?.manifest;
    return manifest ? structuredClone(manifest) : null;
  }

  async getArtifact(
    sandboxId: string,
    checkpointId: string,
    name: string,
  ): Promise<ReadableStream<Uint8Array>> {
    const bytes = this.sandboxes.get(sandboxId)?.get(checkpointId)?.artifacts.get(name);
    if (!bytes)
      throw new AlpineError("checkpoint_missing", `artifact ${name} of ${checkpointId} is not stored`);
    return streamOf(bytes);
  }

  async verify(manifest: CheckpointManifest): Promise<void> {
    const entry = this.sandboxes.get(manifest.sandbox_id)?.get(manifest.checkpoint_id);
    for (const artifact of manifest.artifacts) {
      const bytes = entry?.artifacts.get(artifact.name);
      if (!bytes || bytes.length !== artifact.bytes || (await sha256Hex(bytes)) !== artifact.sha256) {
        throw new AlpineError(
          "checkpoint_checksum_mismatch",
          `checkpoint ${manifest.checkpoint_id}: artifact ${artifact.name} does not match`,
          { artifact: artifact.name, checkpoint_id: manifest.checkpoint_id },
        );
      }
    }
  }

  async list(sandboxId: string): Promise<string[]> {
    return [...(this.sandboxes.get(sandboxId)?.keys() ?? [])];
  }

  async delete(sandboxId: string, checkpointId: string): Promise<void> {
    if (this.failDelete.has(checkpointId)) throw new Error(`cannot delete ${checkpointId}`);
    this.sandboxes.get(sandboxId)?.delete(checkpointId);
    this.deleted.push(checkpointId);
  }

  async prune(_sandboxId: string): Promise<void> {
    this.pruned++;
  }

  /** Changes one byte of a stored artifact. */
  corrupt(sandboxId: string, checkpointId: string, name: string): void {
    const bytes = this.sandboxes.get(sandboxId)?.get(checkpointId)?.artifacts.get(name);
    if (!bytes) throw new Error("nothing to corrupt");
    bytes[0] = (bytes[0]! + 1) % 256;
  }
}
