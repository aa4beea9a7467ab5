import { describe, expect, it } from "vitest";
import { AlpineError } from "../src/index.ts";
import { MAX_CHAIN_CHECKPOINTS } from "../src/orchestrator/decisions/checkpoints.ts";
import { launched, world } from "./fakes/world.ts";

describe("checkpoint", () => {
  it("writes, copies, verifies, then records it: running → saving → running", async () => {
    const w = world();
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.edit("src/a.ts");
    const { record: saved, manifest } = await w.orchestrator.checkpoint("box");
    expect(saved.state).toBe("running");
    expect(saved.checkpoint).toMatchObject({
      id: manifest.checkpoint_id,
      verified: true,
      tree_hash: sandboxd.workspace?.tree_hash,
      head_commit: manifest.head_commit,
      bytes: manifest.artifacts.reduce((n, a) => n + a.bytes, 0),
    });
    expect(saved.checkpoint?.content_hash).toMatch(/^sha256:/);
    expect(w.store.transitions("box").slice(-2)).toEqual(["running→saving", "saving→running"]);
    expect(await w.checkpoints.getManifest(record.id, manifest.checkpoint_id)).toEqual(manifest);
    // sandboxd's staging copy is dropped once the store holds it.
    expect(sandboxd.written.size).toBe(0);
    expect(w.steps.filter((s) => s.startsWith("checkpoint."))).toEqual([
      "checkpoint.lease_acquired",
      "checkpoint.saving",
      "checkpoint.written",
      "checkpoint.artifact_stored",
      "checkpoint.artifact_stored",
      "checkpoint.manifest_stored",
      "checkpoint.verified",
    ]);
    // Its work is saved now: a teardown finds nothing unsaved.
    expect(w.orchestrator.hasUnsavedWork(saved, sandboxd.workspace)).toBe(false);
  });

  it("with resume: the host's credentials are asked before the resume check, not after it and the lease", async () => {
    const w = world();
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.edit("src/a.ts");
    const before = sandboxd.calls.length;
    // What sandboxd had been asked (since the launch) when the credential helper was.
    const askedAfter: string[][] = [];
    w.deps.credentialsFor = async () => {
      askedAfter.push(sandboxd.calls.slice(before));
      return w.credentials;
    };
    const { manifest } = await w.orchestrator.checkpoint("box", undefined, { resume: true });
    expect(askedAfter).toEqual([[]]);
    // The resume check (its health probe) still ran, and the checkpoint got the credentials.
    expect(sandboxd.calls.slice(before)).toContain("health");
    expect(sandboxd.checkpointRequests.at(-1)?.credentials).toEqual(w.credentials);
    expect(manifest.checkpoint_id).toMatch(/^ckpt_/);
  });

  it("keeps a completed sandbox completed", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "t" });
    w.provider.sandboxd(record.id).finishTask();
    await w.orchestrator.waitForTask("box");
    expect((await w.orchestrator.checkpoint("box")).record.state).toBe("completed");
  });

  it("keeps the newest durability.keep_checkpoints and every checkpoint they build on", async () => {
    const w = world({ config: { durability: { keep_checkpoints: 2 } } });
    const record = await launched(w);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      w.clock.advance(1000);
      ids.push((await w.orchestrator.checkpoint("box")).manifest.checkpoint_id);
    }
    // Each builds on the one before: the newest two need all four.
    expect(await w.checkpoints.list(record.id)).toEqual(ids);
    const newest = await w.checkpoints.getManifest(record.id, ids[3]!);
    expect(newest?.depends_on?.checkpoints.map((c) => c.checkpoint_id)).toEqual(ids.slice(0, 3));
    expect(w.record().checkpoint?.id).toBe(ids[3]);
  });

  it("builds each checkpoint on the last verified one, up to MAX_CHAIN_CHECKPOINTS; then a new chain starts and the old one is pruned", async () => {
    const w = world({ config: { durability: { keep_checkpoints: 2 } } });
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    const ids: string[] = [];
    for (let i = 0; i < MAX_CHAIN_CHECKPOINTS + 2; i++) {
      w.clock.advance(1000);
      sandboxd.edit(`f${i}.txt`);
      ids.push((await w.orchestrator.checkpoint("box")).manifest.checkpoint_id);
    }
    const parents = sandboxd.checkpointRequests.map((r) => r.parent?.checkpoint_id ?? null);
    expect(parents).toEqual([null, ...ids.slice(0, 7), null, ids[8]]);
    // The newest two are the new chain: nothing kept builds on the old one.
    expect(await w.checkpoints.list(record.id)).toEqual(ids.slice(8));
  });

  it("a damaged link is found at checkpoint time: the next checkpoint is self-contained and the chain it leaves is pruned", async () => {
    const w = world({ config: { durability: { keep_checkpoints: 1 } } });
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      w.clock.advance(1000);
      ids.push((await w.orchestrator.checkpoint("box")).manifest.checkpoint_id);
    }
    w.checkpoints.corrupt(record.id, ids[1]!, "workspace.bundle");
    w.clock.advance(1000);
    const next = (await w.orchestrator.checkpoint("box")).manifest;
    expect(sandboxd.checkpointRequests.at(-1)?.parent).toBeUndefined();
    expect(next.depends_on).toBeUndefined();
    expect(w.logger.messages("warn")).toContainEqual(
      `checkpoint ${ids[2]} or one it builds on does not verify; the next checkpoint is self-contained`,
    );
    expect(await w.checkpoints.list(record.id)).toEqual([next.checkpoint_id]);
  });

  it("a pruned link is found at checkpoint time: the next checkpoint does not build on it", async () => {
    const w = world();
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    const first = (await w.orchestrator.checkpoint("box")).manifest.checkpoint_id;
    w.clock.advance(1000);
    await w.orchestrator.checkpoint("box");
    await w.checkpoints.delete(record.id, first);
    w.clock.advance(1000);
    const next = (await w.orchestrator.checkpoint("box")).manifest;
    expect(sandboxd.checkpointRequests.at(-1)?.parent).toBeUndefined();
    expect(next.depends_on).toBeUndefined();
  });

  it("a manifest naming a chain other than its parent's is refused", async () => {
    const w = world();
    const record = await launched(w);
    await w.orchestrator.checkpoint("box");
    const sandboxd = w.provider.sandboxd(record.id);
    const real = sandboxd.checkpoint.bind(sandboxd);
    sandboxd.checkpoint = async (body) => {
      const m = await real(body);
      m.depends_on!.checkpoints[0]!.sha256 = "0".repeat(64);
      return m;
    };
    w.clock.advance(1000);
    await expect(w.orchestrator.checkpoint("box")).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
    });
    expect(await w.checkpoints.list(record.id)).toHaveLength(1);
  });

  it("an old checkpoint that cannot be deleted stays, logged", async () => {
    const w = world({ config: { durability: { keep_checkpoints: 1 } } });
    const record = await launched(w);
    // Self-contained checkpoints (as when sandboxd no longer has the parent's commits).
    const sandboxd = w.provider.sandboxd(record.id);
    const real = sandboxd.checkpoint.bind(sandboxd);
    sandboxd.checkpoint = async ({ parent: _, ...body }) => real(body);
    const first = (await w.orchestrator.checkpoint("box")).manifest.checkpoint_id;
    w.checkpoints.failDelete.add(first);
    await w.orchestrator.checkpoint("box");
    expect((await w.checkpoints.list(record.id))[0]).toBe(first);
    expect(w.logger.messages("warn")).toEqual([`deleting the old checkpoint ${first} failed; going on`]);
  });

  it("an artifact changed in transit fails it; the previous verified checkpoint stays", async () => {
    const w = world();
    const record = await launched(w);
    const previous = (await w.orchestrator.checkpoint("box")).record.checkpoint;
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.tamper = "workspace.bundle";
    await expect(w.orchestrator.checkpoint("box")).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
      details: { artifact: "workspace.bundle" },
    });
    const after = w.record();
    expect(after).toMatchObject({ state: "running", checkpoint: previous });
    expect(await w.checkpoints.list(record.id)).toEqual([previous?.id]);
    expect(sandboxd.written.size).toBe(0);
    expect(w.store.log.at(-1)?.reason).toBe("checkpoint failed: checkpoint_checksum_mismatch");
  });

  it("a stored artifact that does not verify fails it", async () => {
    const w = world();
    const record = await launched(w);
    const verify = w.checkpoints.verify.bind(w.checkpoints);
    w.checkpoints.verify = async (manifest) => {
      w.checkpoints.corrupt(record.id, manifest.checkpoint_id, "opencode-data.tar.gz");
      return verify(manifest);
    };
    await expect(w.orchestrator.checkpoint("box")).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
      details: { artifact: "opencode-data.tar.gz" },
    });
    expect(w.record().checkpoint).toBeNull();
    expect(await w.checkpoints.list(record.id)).toEqual([]);
  });

  it("sandboxd failing is checkpoint_failed; cleanup failures are logged, not raised", async () => {
    const w = world();
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.fail.set("checkpoint", new Error("disk full"));
    sandboxd.fail.set("deleteCheckpoint", new Error("gone"));
    w.checkpoints.delete = async () => {
      throw new Error("store down");
    };
    await expect(w.orchestrator.checkpoint("box")).rejects.toMatchObject({
      reason: "checkpoint_failed",
      message: "checkpoint of 'box' failed: disk full",
    });
    expect(w.record().state).toBe("running");
    expect(w.logger.messages()).toEqual([
      expect.stringMatching(/^deleting the failed checkpoint ckpt_\w+ failed; going on$/),
      expect.stringMatching(/^deleting sandboxd's copy of ckpt_\w+ failed; going on$/),
    ]);
  });

  it("a manifest for another checkpoint is refused", async () => {
    const w = world();
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    const real = sandboxd.checkpoint.bind(sandboxd);
    sandboxd.checkpoint = async (body) => ({ ...(await real(body)), checkpoint_id: "ckpt_other" });
    await expect(w.orchestrator.checkpoint("box")).rejects.toMatchObject({ reason: "checkpoint_failed" });
  });

  it("only a live sandbox can be checkpointed", async () => {
    const w = world();
    await launched(w);
    await w.orchestrator.teardown("box", { force: true });
    await expect(w.orchestrator.checkpoint("box")).rejects.toMatchObject({
      reason: "sandbox_not_running",
      details: { state: "destroyed" },
    });
    await expect(w.orchestrator.checkpoint("nobody")).rejects.toMatchObject({ reason: "sandbox_not_found" });
  });

  it("a runtime that vanished is sandbox_unavailable before anything changes", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.crash(record.id);
    await expect(w.orchestrator.checkpoint("box")).rejects.toBeInstanceOf(AlpineError);
    expect(w.record().state).toBe("running");
  });
});
