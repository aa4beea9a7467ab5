import { describe, expect, it } from "vitest";
import { LEASE_TTL_MS, type SandboxRecord } from "../src/index.ts";
import { launched, type World, world } from "./fakes/world.ts";

/** What a command that died mid-way leaves: its state, and its lease (expired, from another host). */
function diedIn(w: World, patch: Partial<SandboxRecord>, from?: SandboxRecord["state"]): void {
  const record = w.record();
  w.store.records.set("box", { ...record, ...patch, version: record.version + 1 });
  if (from) {
    w.store.log.push({
      sandbox_id: record.id,
      name: "box",
      at: w.clock.iso(),
      kind: "transition",
      from,
      to: "saving",
      operation_id: "op_dead",
      reason: "checkpoint",
      seq: 999,
    });
  }
  w.store.leases.set("box", {
    id: "op_dead:0",
    type: "checkpoint",
    holder: "elsewhere:9",
    host: "elsewhere",
    pid: 9,
    operation_id: "op_dead",
    acquired_at: w.clock.iso(),
    expires_at: new Date(w.clock.now() + LEASE_TTL_MS).toISOString(),
  });
  w.clock.advance(LEASE_TTL_MS + 1);
}

describe("settling what a dead command left", () => {
  it("provisioning → error, with the dead launch's runtime stopped", async () => {
    const w = world();
    await launched(w);
    diedIn(w, { state: "provisioning" });
    const settled = await w.orchestrator.settle(w.record());
    expect(settled).toMatchObject({ state: "error", error: { details: { interrupted: "launch" } } });
    expect(w.provider.ops().at(-1)).toBe("stop");
    expect(w.store.notes("box", "lease_takeover")).toHaveLength(1);
    expect(w.store.log.at(-1)?.reason).toBe("the launch was interrupted (its process died)");
  });

  it("saving → the state it was saved from; checkpoints stored but never verified are discarded", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.sandboxd(record.id).edit("a");
    const { manifest } = await w.orchestrator.checkpoint("box");
    // The dead checkpoint stored an artifact and a manifest, newer than the verified one, then died.
    w.clock.advance(1000);
    const sandboxd = w.provider.sandboxd(record.id);
    const partial = await sandboxd.checkpoint({ checkpoint_id: "ckpt_dead", created_at: w.clock.iso() });
    await w.checkpoints.putManifest(partial);
    await w.checkpoints.putArtifact(record.id, "ckpt_orphan", "workspace.bundle", new Blob(["x"]).stream());
    diedIn(w, { state: "saving" }, "completed");
    const settled = await w.orchestrator.settle(w.record());
    expect(settled.state).toBe("completed");
    expect(await w.checkpoints.list(record.id)).toEqual([manifest.checkpoint_id]);
    expect(w.checkpoints.pruned).toBe(1);
    expect(settled.checkpoint?.id).toBe(manifest.checkpoint_id);
  });

  it("saving with no transition into it on record → error", async () => {
    const w = world();
    await launched(w);
    diedIn(w, { state: "saving" });
    const settled = await w.orchestrator.settle(w.record());
    expect(settled).toMatchObject({ state: "error", error: { reason_code: "sandbox_unavailable" } });
  });

  it("an unreadable manifest counts as a damaged checkpoint, and is logged", async () => {
    const w = world();
    const record = await launched(w);
    await w.checkpoints.putArtifact(record.id, "ckpt_x", "workspace.bundle", new Blob(["x"]).stream());
    w.checkpoints.getManifest = async () => {
      throw new Error("disk error");
    };
    diedIn(w, { state: "saving" }, "running");
    expect((await w.orchestrator.settle(w.record())).state).toBe("running");
    expect(await w.checkpoints.list(record.id)).toEqual([]);
    expect(w.logger.messages("debug")).toContain(
      "reading the manifest of checkpoint ckpt_x failed; going on",
    );
  });

  it("tearing_down stays, its runtime stopped, marked once; teardown then finishes it", async () => {
    const w = world();
    await launched(w);
    diedIn(w, { state: "tearing_down" });
    const settled = await w.orchestrator.settle(w.record());
    expect(settled).toMatchObject({ state: "tearing_down", error: { details: { interrupted: "teardown" } } });
    expect(w.store.notes("box")).toContain(
      "the teardown was interrupted (its process died); its runtime was stopped",
    );
    const notes = w.store.notes("box").length;
    // Settling again (status again) adds nothing.
    await w.orchestrator.settle(w.record());
    await w.orchestrator.settle(w.record());
    expect(w.store.notes("box")).toHaveLength(notes);
    const done = await w.orchestrator.teardown("box", { force: false });
    expect(done).toMatchObject({ destroyed: true, record: { state: "destroyed", error: null } });
  });

  it("launch brings back a sandbox whose teardown died", async () => {
    const w = world();
    await launched(w);
    diedIn(w, { state: "tearing_down" });
    const result = await w.orchestrator.launch({ name: "box" });
    expect(result).toMatchObject({ resumed: true, record: { state: "running" } });
    expect(w.store.transitions("box").slice(-3)).toEqual([
      "tearing_down→error",
      "error→provisioning",
      "provisioning→running",
    ]);
  });

  it("leaves a sandbox alone while a live operation holds it", async () => {
    const w = world();
    await launched(w);
    diedIn(w, { state: "provisioning" });
    w.clock.ms -= LEASE_TTL_MS; // the lease is current again: its holder lives
    const record = w.record();
    expect(await w.orchestrator.settle(record)).toBe(record);
    expect(w.record().state).toBe("provisioning");
  });

  it("a race lost to another settler is not an error", async () => {
    const w = world();
    await launched(w);
    diedIn(w, { state: "provisioning" });
    const cas = w.store.compareAndSwapLease.bind(w.store);
    w.store.compareAndSwapLease = async () => false;
    const record = w.record();
    expect(await w.orchestrator.settle(record)).toBe(record);
    w.store.compareAndSwapLease = cas;
  });

  it("settling is a no-op for a sandbox in a settled state", async () => {
    const w = world();
    const record = await launched(w);
    expect(await w.orchestrator.settle(record)).toBe(record);
  });

  it("a settle that fails for another reason reports it", async () => {
    const w = world();
    await launched(w);
    diedIn(w, { state: "provisioning" });
    w.store.getLease = async () => {
      throw new Error("store closed");
    };
    await expect(w.orchestrator.settle(w.record())).rejects.toThrow("store closed");
  });
});
