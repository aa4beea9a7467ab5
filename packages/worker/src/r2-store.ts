import type { CheckpointManifest, CheckpointStore } from "@alpine/core";
import { AlpineError } from "@alpine/core/errors";

const SAFE_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** R2 multipart parts must be equal-sized (≥ 5 MiB) except the last; this is also the in-memory buffer. */
const PART_BYTES = 8 * 1024 * 1024;

function checkId(kind: string, value: string): string {
  if (!SAFE_ID.test(value) || value.includes("..")) {
    throw new AlpineError("checkpoint_missing", `invalid ${kind} '${value.slice(0, 100)}'`, {
      [kind]: value.slice(0, 100),
    });
  }
  return value;
}

const hex = (buf: ArrayBuffer) =>
  [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

/** Reads a stream to its end, hashing (sha256) and counting it; `onChunk` sees every chunk. */
async function digest(
  body: ReadableStream<Uint8Array>,
  onChunk?: (chunk: Uint8Array) => Promise<void>,
): Promise<{ sha256: string; bytes: number }> {
  const hasher = new crypto.DigestStream("SHA-256");
  const writer = hasher.getWriter();
  let bytes = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    await writer.write(value);
    if (onChunk) await onChunk(value);
  }
  await writer.close();
  return { sha256: hex(await hasher.digest), bytes };
}

/**
 * Checkpoints in R2:
 *   <prefix>/<sandbox-id>/<checkpoint-id>/manifest.json
 *   <prefix>/<sandbox-id>/<checkpoint-id>/artifacts/<name>
 * Artifacts stream from sandboxd into R2 (multipart for large ones, 8 MiB in
 * memory at most) while their sha256 is computed; `verify` reads every object
 * back. R2 cannot rename, so artifacts are keyed by checkpoint rather than by
 * content (no dedupe; `durability.keep_checkpoints` bounds the space).
 */
export class R2CheckpointStore implements CheckpointStore {
  constructor(
    private readonly bucket: R2Bucket,
    private readonly prefix = "sandboxes",
  ) {}

  private dir(sandboxId: string, checkpointId: string) {
    return `${this.prefix}/${checkId("sandbox_id", sandboxId)}/${checkId("checkpoint_id", checkpointId)}`;
  }

  artifactKey(sandboxId: string, checkpointId: string, name: string) {
    return `${this.dir(sandboxId, checkpointId)}/artifacts/${checkId("artifact", name)}`;
  }

  async putArtifact(
    sandboxId: string,
    checkpointId: string,
    name: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<{ sha256: string; bytes: number }> {
    const key = this.artifactKey(sandboxId, checkpointId, name);
    let buffer = new Uint8Array(PART_BYTES);
    let filled = 0;
    let upload: R2MultipartUpload | null = null;
    const parts: R2UploadedPart[] = [];
    const flush = async () => {
      upload ??= await this.bucket.createMultipartUpload(key);
      parts.push(await upload.uploadPart(parts.length + 1, buffer.slice(0, filled)));
      buffer = new Uint8Array(PART_BYTES);
      filled = 0;
    };
    try {
      const result = await digest(body, async (chunk) => {
        let offset = 0;
        while (offset < chunk.byteLength) {
          const n = Math.min(PART_BYTES - filled, chunk.byteLength - offset);
          buffer.set(chunk.subarray(offset, offset + n), filled);
          filled += n;
          offset += n;
          if (filled === PART_BYTES) await flush();
        }
      });
      if (upload === null) {
        await this.bucket.put(key, buffer.slice(0, filled));
      } else {
        if (filled > 0) await flush();
        await (upload as R2MultipartUpload).complete(parts);
      }
      return result;
    } catch (err) {
      // Clean-up after a failed store: the artifact is not recorded anywhere, and prune removes
      // what a failed abort or delete leaves; the store's own error is what the caller needs.
      if (upload) await (upload as R2MultipartUpload).abort().catch(() => undefined);
      await this.bucket.delete(key).catch(() => undefined);
      if (err instanceof AlpineError) throw err;
      throw new AlpineError(
        "checkpoint_failed",
        `could not store checkpoint artifact ${name} in R2: ${(err as Error).message}`,
        { artifact: name },
      );
    }
  }

  async putManifest(manifest: CheckpointManifest): Promise<void> {
    await this.bucket.put(
      `${this.dir(manifest.sandbox_id, manifest.checkpoint_id)}/manifest.json`,
      JSON.stringify(manifest, null, 2),
      {
        httpMetadata: { contentType: "application/json" },
        customMetadata: { created_at: manifest.created_at },
      },
    );
  }

  async getManifest(sandboxId: string, checkpointId: string): Promise<CheckpointManifest | null> {
    const obj = await this.bucket.get(`${this.dir(sandboxId, checkpointId)}/manifest.json`);
    return obj ? ((await obj.json()) as CheckpointManifest) : null;
  }

  async getArtifact(
    sandboxId: string,
    checkpointId: string,
    name: string,
  ): Promise<ReadableStream<Uint8Array>> {
    const obj = await this.bucket.get(this.artifactKey(sandboxId, checkpointId, name));
    if (!obj) {
      throw new AlpineError("checkpoint_missing", `checkpoint ${checkpointId} has no artifact '${name}'`, {
        checkpoint_id: checkpointId,
        artifact: name,
      });
    }
    return obj.body;
  }

  async verify(manifest: CheckpointManifest): Promise<void> {
    for (const artifact of manifest.artifacts) {
      const fail = (why: string) =>
        new AlpineError(
          "checkpoint_checksum_mismatch",
          `checkpoint ${manifest.checkpoint_id}: artifact ${artifact.name} ${why}`,
          { checkpoint_id: manifest.checkpoint_id, artifact: artifact.name },
        );
      const obj = await this.bucket.get(
        this.artifactKey(manifest.sandbox_id, manifest.checkpoint_id, artifact.name),
      );
      if (!obj) throw fail("is missing");
      if (obj.size !== artifact.bytes) {
        await obj.body.cancel();
        throw fail(`has ${obj.size} bytes, expected ${artifact.bytes}`);
      }
      let head = new Uint8Array(0);
      const { sha256, bytes } = await digest(obj.body, async (chunk) => {
        if (head.byteLength < 64 * 1024) {
          const next = new Uint8Array(head.byteLength + chunk.byteLength);
          next.set(head);
          next.set(chunk, head.byteLength);
          head = next;
        }
      });
      if (bytes !== artifact.bytes) throw fail(`has ${bytes} bytes, expected ${artifact.bytes}`);
      if (sha256 !== artifact.sha256) throw fail(`has sha256 ${sha256}, expected ${artifact.sha256}`);
      if (artifact.name.endsWith(".bundle")) {
        const why = bundleHeaderProblem(head, manifest);
        if (why) throw fail(why);
      }
    }
  }

  async list(sandboxId: string): Promise<string[]> {
    const prefix = `${this.prefix}/${checkId("sandbox_id", sandboxId)}/`;
    const found: { id: string; at: string }[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix, cursor, include: ["customMetadata"] });
      for (const obj of page.objects) {
        const m = /^([^/]+)\/manifest\.json$/.exec(obj.key.slice(prefix.length));
        if (m) found.push({ id: m[1]!, at: obj.customMetadata?.created_at ?? "" });
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return found.sort((a, b) => a.at.localeCompare(b.at) || a.id.localeCompare(b.id)).map((x) => x.id);
  }

  /**
   * Removes what an interrupted checkpoint left in R2 (the object running it was evicted or
   * restarted mid-upload): artifacts of checkpoints that never got their manifest. Called
   * holding the sandbox's lease. Unfinished multipart uploads are aborted by R2 itself.
   */
  async prune(sandboxId: string): Promise<void> {
    const prefix = `${this.prefix}/${checkId("sandbox_id", sandboxId)}/`;
    const keysById = new Map<string, string[]>();
    const withManifest = new Set<string>();
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix, cursor });
      for (const obj of page.objects) {
        const [id, ...rest] = obj.key.slice(prefix.length).split("/");
        if (!id) continue;
        if (rest.join("/") === "manifest.json") withManifest.add(id);
        keysById.set(id, [...(keysById.get(id) ?? []), obj.key]);
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    const orphans = [...keysById.entries()]
      .filter(([id]) => !withManifest.has(id))
      .flatMap(([, keys]) => keys);
    for (let i = 0; i < orphans.length; i += 1000) await this.bucket.delete(orphans.slice(i, i + 1000));
  }

  async delete(sandboxId: string, checkpointId: string): Promise<void> {
    const prefix = `${this.dir(sandboxId, checkpointId)}/`;
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix, cursor });
      if (page.objects.length) await this.bucket.delete(page.objects.map((o) => o.key));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  }
}

/**
 * What can be checked of a git bundle without git (workerd runs no
 * processes): its header names the sandbox branch at the manifest's head and
 * the checkpoint ref at its commit. The pack is covered by the sha256 taken
 * when sandboxd wrote it, and read by git inside the sandbox on a restore
 * (which checks the head and checkpoint commits against the manifest).
 */
export function bundleHeaderProblem(head: Uint8Array, manifest: CheckpointManifest): string | null {
  const text = new TextDecoder("latin1").decode(head);
  const end = text.indexOf("\n\n");
  if (!/^# v[23] git bundle\n/.test(text) || end < 0) return "is not a git bundle (bad header)";
  const refs = new Map<string, string>();
  for (const line of text.slice(0, end).split("\n").slice(1)) {
    if (line.startsWith("-") || line.startsWith("@")) continue; // prerequisites, capabilities
    const m = /^([0-9a-f]{40,64}) (\S+)$/.exec(line);
    if (m) refs.set(m[2]!, m[1]!);
  }
  // A thin bundle (depends_on) leaves the branch out when its head is already safe elsewhere.
  const branchRef = refs.get(`refs/heads/${manifest.branch}`);
  if (branchRef !== manifest.head_commit && !(branchRef === undefined && manifest.depends_on)) {
    return `does not hold refs/heads/${manifest.branch} at ${manifest.head_commit}`;
  }
  if (![...refs.values()].includes(manifest.checkpoint_commit)) {
    return `does not hold the checkpoint commit ${manifest.checkpoint_commit}`;
  }
  if (text.slice(end + 2, end + 6) !== "PACK") return "has no pack after its header";
  return null;
}
