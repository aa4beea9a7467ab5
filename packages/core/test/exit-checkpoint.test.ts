import { describe, expect, it } from "vitest";
import { exitCheckpointToCollect } from "../src/index.ts";
import { launched, world } from "./fakes/world.ts";

// Issue 15, finding 6: a rollout SIGTERMs a busy container; its sandboxd writes and holds an exit
// checkpoint, and the control plane copies it and ends the sandbox so the next launch resumes.
describe("exit checkpoint", () => {
  it("copies the checkpoint sandboxd holds, drops sandboxd's copy, and ends as a teardown with it", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "work" });
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.edit("src/a.ts");
    const written = await sandboxd.sigterm();
    sandboxd.calls.length = 0;

    const result = await w.orchestrator.collectExitCheckpoint("box");
    expect(result).toMatchObject({ destroyed: true, checkpoint_id: written.checkpoint_id });
    // Not asked to write another one (its agent is being stopped): its own is copied and dropped.
    expect(sandboxd.calls).not.toContain("checkpoint");
    expect(sandboxd.calls).toContain("deleteCheckpoint");
    expect(sandboxd.written.size).toBe(0);
    expect(w.record()).toMatchObject({
      state: "destroyed",
      runtime: null,
      checkpoint: { id: written.checkpoint_id, verified: true, created_at: written.created_at },
    });
    expect(await w.checkpoints.getManifest(record.id, written.checkpoint_id)).toEqual(written);
    expect(w.store.transitions("box").slice(-3)).toEqual([
      "running→saving",
      "saving→tearing_down",
      "tearing_down→destroyed",
    ]);

    const resumed = await w.orchestrator.launch({ name: "box" });
    expect(resumed).toMatchObject({ resumed: true });
    expect(w.provider.sandboxd(record.id).restoredFrom?.checkpoint_id).toBe(written.checkpoint_id);
  });

  it("does nothing while no exit checkpoint is held", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "work" });
    w.provider.sandboxd(record.id).edit("src/a.ts");
    expect(await w.orchestrator.collectExitCheckpoint("box")).toBeNull();
    expect(w.record()).toMatchObject({ state: "running", checkpoint: null });
    expect(w.provider.sandboxd(record.id).calls).not.toContain("deleteCheckpoint");
  });

  it("keeps sandboxd's copy when copying fails, so the next attempt still has the work", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "work" });
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.edit("src/a.ts");
    const written = await sandboxd.sigterm();
    sandboxd.tamper = "workspace.bundle";
    await expect(w.orchestrator.collectExitCheckpoint("box")).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
    });
    expect(w.record()).toMatchObject({ state: "running", checkpoint: null });
    expect(sandboxd.written.has(written.checkpoint_id)).toBe(true);
    expect(sandboxd.calls).not.toContain("deleteCheckpoint");

    sandboxd.tamper = null;
    expect(await w.orchestrator.collectExitCheckpoint("box")).toMatchObject({ destroyed: true });
    expect(w.record().checkpoint?.id).toBe(written.checkpoint_id);
  });

  it("takes only a live sandbox's own checkpoint, once", () => {
    const manifest = { sandbox_id: "sbx_1", checkpoint_id: "ckpt_exit_1" } as never;
    const probe = { state: "ok" as const, status: { exit_checkpoint: manifest } as never };
    const live = { id: "sbx_1", state: "running" as const, checkpoint: null };
    expect(exitCheckpointToCollect(live, probe)).toBe(manifest);
    expect(exitCheckpointToCollect({ ...live, state: "completed" }, probe)).toBe(manifest);
    expect(exitCheckpointToCollect({ ...live, state: "saving" }, probe)).toBeNull();
    expect(exitCheckpointToCollect({ ...live, id: "sbx_2" }, probe)).toBeNull();
    expect(
      exitCheckpointToCollect({ ...live, checkpoint: { id: "ckpt_exit_1" } as never }, probe),
    ).toBeNull();
    expect(exitCheckpointToCollect(live, { state: "unavailable", status: null })).toBeNull();
    expect(exitCheckpointToCollect(live, { state: "ok", status: {} as never })).toBeNull();
  });
});
