import { env } from "cloudflare:workers";
import type { CheckpointManifest } from "@alpine/core";
import { describe, expect, it } from "vitest";
import { bundleHeaderProblem, R2CheckpointStore } from "../src/r2-store.ts";

const hex = (buf: ArrayBuffer) =>
  [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

function streamOf(bytes: Uint8Array, chunk = 64 * 1024): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunk));
      offset += chunk;
    },
  });
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

const HEAD = "a".repeat(40);
const CKPT = "b".repeat(40);

/** A bundle-shaped artifact (header + pack signature) for the header checks; the pack itself is random. */
function bundleBytes(branch: string): Uint8Array {
  const header = new TextEncoder().encode(
    `# v2 git bundle\n${HEAD} refs/heads/${branch}\n${CKPT} refs/alpine/checkpoints/c1\n\nPACK`,
  );
  const body = randomBytes(1000);
  const out = new Uint8Array(header.length + body.length);
  out.set(header);
  out.set(body, header.length);
  return out;
}

async function manifestFor(
  store: R2CheckpointStore,
  sandboxId: string,
  checkpointId: string,
  artifacts: Record<string, Uint8Array>,
): Promise<CheckpointManifest> {
  const list = [];
  for (const [name, bytes] of Object.entries(artifacts)) {
    const stored = await store.putArtifact(sandboxId, checkpointId, name, streamOf(bytes));
    expect(stored).toEqual({
      sha256: hex(await crypto.subtle.digest("SHA-256", bytes)),
      bytes: bytes.length,
    });
    list.push({ name, ...stored });
  }
  const manifest: CheckpointManifest = {
    schema_version: 1,
    checkpoint_id: checkpointId,
    sandbox_id: sandboxId,
    created_at: new Date().toISOString(),
    branch: "alpine/demo",
    base_commit: "c".repeat(40),
    head_commit: HEAD,
    checkpoint_commit: CKPT,
    tree_hash: "d".repeat(40),
    artifacts: list,
  };
  await store.putManifest(manifest);
  return manifest;
}

describe("R2 checkpoint store (local R2 in workerd)", () => {
  const store = new R2CheckpointStore(env.CHECKPOINTS, "sandboxes");

  it("streams a large artifact in (multipart), hashes it on the way, and verifies it by reading it back", async () => {
    // 9 MiB + a bit: two 8 MiB-buffered parts.
    const big = randomBytes(9 * 1024 * 1024 + 123);
    const m = await manifestFor(store, "sbx_r2a", "ckpt_1", {
      "workspace.bundle": bundleBytes("alpine/demo"),
      "opencode-data.tar.gz": big,
    });
    await store.verify(m);
    expect(await store.getManifest("sbx_r2a", "ckpt_1")).toEqual(m);
    const back = new Uint8Array(
      await new Response(await store.getArtifact("sbx_r2a", "ckpt_1", "opencode-data.tar.gz")).arrayBuffer(),
    );
    expect(back.length).toBe(big.length);
    expect(hex(await crypto.subtle.digest("SHA-256", back))).toBe(
      hex(await crypto.subtle.digest("SHA-256", big)),
    );
  });

  it("a corrupted byte, a truncated object and a missing object are each checkpoint_checksum_mismatch naming the artifact", async () => {
    const data = randomBytes(5000);
    const m = await manifestFor(store, "sbx_r2b", "ckpt_1", {
      "workspace.bundle": bundleBytes("alpine/demo"),
      "opencode-data.tar.gz": data,
    });
    const key = store.artifactKey("sbx_r2b", "ckpt_1", "opencode-data.tar.gz");
    const flipped = data.slice();
    flipped[2500] = (flipped[2500] ?? 0) ^ 0xff;
    await env.CHECKPOINTS.put(key, flipped);
    await expect(store.verify(m)).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
      details: { artifact: "opencode-data.tar.gz", checkpoint_id: "ckpt_1" },
      message: expect.stringContaining("sha256"),
    });
    await env.CHECKPOINTS.put(key, data.slice(0, 4000));
    await expect(store.verify(m)).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
      message: expect.stringContaining("4000 bytes"),
    });
    await env.CHECKPOINTS.delete(key);
    await expect(store.verify(m)).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
      message: expect.stringContaining("missing"),
    });
  });

  it("a bundle whose header does not name the manifest's branch head is refused even with a matching sha256", async () => {
    const m = await manifestFor(store, "sbx_r2c", "ckpt_1", {
      "workspace.bundle": bundleBytes("alpine/other"),
    });
    await expect(store.verify(m)).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
      details: { artifact: "workspace.bundle" },
    });
    expect(bundleHeaderProblem(new TextEncoder().encode("not a bundle"), m)).toMatch(/not a git bundle/);
  });

  it("lists checkpoints oldest first and deletes one with all its objects", async () => {
    const a = await manifestFor(store, "sbx_r2d", "ckpt_a", {
      "workspace.bundle": bundleBytes("alpine/demo"),
    });
    await new Promise((r) => setTimeout(r, 5));
    await manifestFor(store, "sbx_r2d", "ckpt_b", { "workspace.bundle": bundleBytes("alpine/demo") });
    expect(await store.list("sbx_r2d")).toEqual(["ckpt_a", "ckpt_b"]);
    await store.delete("sbx_r2d", a.checkpoint_id);
    expect(await store.list("sbx_r2d")).toEqual(["ckpt_b"]);
    const left = await env.CHECKPOINTS.list({ prefix: "sandboxes/sbx_r2d/ckpt_a/" });
    expect(left.objects).toEqual([]);
  });

  it("prune removes the artifacts of a checkpoint that never got its manifest, and nothing else", async () => {
    const kept = await manifestFor(store, "sbx_r2e", "ckpt_done", {
      "workspace.bundle": bundleBytes("alpine/demo"),
    });
    // An upload cut short: artifacts stored, manifest never written.
    await store.putArtifact("sbx_r2e", "ckpt_cut", "workspace.bundle", streamOf(bundleBytes("alpine/demo")));
    await store.putArtifact("sbx_r2e", "ckpt_cut", "opencode-data.tar.gz", streamOf(randomBytes(100)));
    expect((await env.CHECKPOINTS.list({ prefix: "sandboxes/sbx_r2e/ckpt_cut/" })).objects).toHaveLength(2);
    await store.prune("sbx_r2e");
    expect((await env.CHECKPOINTS.list({ prefix: "sandboxes/sbx_r2e/ckpt_cut/" })).objects).toEqual([]);
    expect(await store.list("sbx_r2e")).toEqual(["ckpt_done"]);
    await store.verify(kept);
  });

  it("refuses ids that would escape their prefix", async () => {
    await expect(store.getManifest("../x", "ckpt_1")).rejects.toMatchObject({ reason: "checkpoint_missing" });
    await expect(store.getArtifact("sbx_1", "ckpt_1", "../../etc")).rejects.toMatchObject({
      reason: "checkpoint_missing",
    });
  });
});
