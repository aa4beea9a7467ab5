import { describe, expect, it } from "vitest";
import { AlpineError, LEASE_TTL_MS } from "../src/index.ts";
import { launched, REPO, world } from "./fakes/world.ts";

describe("export", () => {
  it("pushes the live workspace and records the export", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "Add a feature" });
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.edit("src/feature.ts");
    const result = await w.orchestrator.export("box", {});
    expect(result).toMatchObject({
      source: "workspace",
      pr_url: null,
      checkpoint_id: null,
      auto_tore_down: false,
    });
    expect(sandboxd.exports).toEqual([
      {
        branch: "alpine/box",
        message: "Add a feature\n\nExported by alpine from sandbox box.\n\nFiles changed:\n- src/feature.ts",
        author: { name: "Dev", email: "dev@example.com" },
        push: true,
        credentials: w.credentials,
      },
    ]);
    expect(result.record.export).toMatchObject({
      branch: "alpine/box",
      commit: result.work.commit,
      tree_hash: sandboxd.workspace?.tree_hash,
      remote: REPO,
      pushed_at: result.exported_at,
    });
    // Exported work is saved work.
    expect(w.orchestrator.hasUnsavedWork(result.record, sandboxd.workspace)).toBe(false);
    expect(w.store.notes("box").at(-1)).toBe(`exported ${result.work.commit.slice(0, 12)} to alpine/box`);
    expect(w.steps.filter((s) => s.startsWith("export."))).toEqual([
      "export.lease_acquired",
      "export.pushed",
      "export.recorded",
    ]);
  });

  it("makes a patch without pushing or asking for credentials", async () => {
    const w = world();
    w.credentials = null;
    const record = await launched(w);
    w.provider.sandboxd(record.id).edit("a.ts");
    const result = await w.orchestrator.export("box", { patch: true, branch: "feature/x" });
    expect(result.work).toMatchObject({ pushed: false, patch: "diff --git a/a.ts b/a.ts\n" });
    expect(result.record.export).toMatchObject({ branch: "feature/x", pushed_at: null });
    expect(w.store.notes("box").at(-1)).toBe("exported a patch");
  });

  it("opens a pull request when asked", async () => {
    const w = world();
    await launched(w, "box", { task: "Fix it" });
    const result = await w.orchestrator.export("box", { pr: true });
    expect(result.pr_url).toBe("https://github.test/pr/1");
    expect(result.record.export?.pr_url).toBe(result.pr_url);
    expect(w.pullRequests.opened[0]).toMatchObject({
      repo: REPO,
      head: "alpine/box",
      base: null,
      title: "Fix it",
    });
  });

  it.each([
    [new Error("HTTP 502"), "pr_failed"],
    [new AlpineError("github_auth_missing", "no token"), "github_auth_missing"],
  ])("a pull request that fails (%s) is %s; the push stays recorded", async (error, reason) => {
    const w = world();
    await launched(w);
    w.pullRequests.fail = error;
    await expect(w.orchestrator.export("box", { pr: true })).rejects.toMatchObject({ reason });
    expect(w.record().export?.pushed_at).not.toBeNull();
  });

  it("a push without credentials to a remote that needs them is github_auth_missing", async () => {
    const w = world();
    w.credentials = null;
    await launched(w);
    await expect(w.orchestrator.export("box", {})).rejects.toMatchObject({ reason: "github_auth_missing" });
    const open = world({ requiresAuth: false });
    open.credentials = null;
    await launched(open);
    expect((await open.orchestrator.export("box", {})).work.pushed).toBe(true);
  });

  it("exports a destroyed sandbox from its verified checkpoint", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.sandboxd(record.id).edit("a.ts");
    const { checkpoint_id } = await w.orchestrator.teardown("box", { force: false });
    const result = await w.orchestrator.export("box", {});
    expect(result).toMatchObject({ source: "checkpoint", checkpoint_id });
    expect(w.exporter.exported[0]?.opts).toMatchObject({
      repo: REPO,
      branch: "alpine/box",
      push: true,
      patch: false,
    });
  });

  it("a destroyed sandbox without a checkpoint has nothing to export", async () => {
    const w = world();
    await launched(w);
    await w.orchestrator.teardown("box", { force: true });
    await expect(w.orchestrator.export("box", { patch: true })).rejects.toMatchObject({
      reason: "checkpoint_missing",
    });
  });

  it("a damaged checkpoint is never exported", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.sandboxd(record.id).edit("a.ts");
    const { checkpoint_id } = await w.orchestrator.teardown("box", { force: false });
    w.checkpoints.corrupt(record.id, checkpoint_id!, "workspace.bundle");
    await expect(w.orchestrator.export("box", {})).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
    });
    expect(w.exporter.exported).toEqual([]);
  });

  it("a checkpoint missing from the store is checkpoint_missing", async () => {
    const w = world();
    const record = await launched(w);
    const { manifest } = await w.orchestrator.checkpoint("box");
    w.checkpoints.sandboxes.get(record.id)?.delete(manifest.checkpoint_id);
    await expect(w.orchestrator.export("box", { from_checkpoint: true })).rejects.toMatchObject({
      reason: "checkpoint_missing",
      details: { checkpoint_id: manifest.checkpoint_id },
    });
  });

  it("refuses an errored sandbox, and one being saved by a live operation", async () => {
    const w = world();
    w.provider.fail.set("start", new Error("no"));
    await launched(w).catch(() => null);
    await expect(w.orchestrator.export("box", {})).rejects.toMatchObject({ reason: "export_state_blocked" });

    const v = world();
    await launched(v);
    const record = v.record();
    v.store.records.set("box", { ...record, state: "saving" });
    v.store.leases.set("box", {
      id: "l",
      type: "checkpoint",
      holder: "there:1",
      host: "there",
      pid: 1,
      operation_id: "op_x",
      acquired_at: v.clock.iso(),
      expires_at: new Date(v.clock.now() + LEASE_TTL_MS).toISOString(),
    });
    await expect(v.orchestrator.export("box", {})).rejects.toMatchObject({
      reason: "export_retryable_state",
    });
  });

  it("an invalid branch is refused before anything runs", async () => {
    const w = world();
    await launched(w);
    await expect(w.orchestrator.export("box", { branch: "a..b" })).rejects.toMatchObject({
      reason: "branch_invalid",
    });
  });

  it("tears a completed sandbox down at once when its work is pushed and there is no retention", async () => {
    const w = world({ config: { sandbox: { completed_retention_minutes: 0 } } });
    const record = await launched(w, "box", { task: "t" });
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.edit("a.ts");
    sandboxd.finishTask();
    await w.orchestrator.waitForTask("box");
    const result = await w.orchestrator.export("box", {});
    expect(result).toMatchObject({ auto_tore_down: true, record: { state: "destroyed" } });
  });

  it("an automatic teardown that cannot go ahead leaves the sandbox, logged", async () => {
    const w = world({ config: { sandbox: { completed_retention_minutes: 0 } } });
    const record = await launched(w, "box", { task: "t" });
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.finishTask();
    await w.orchestrator.waitForTask("box");
    w.provider.fail.set("destroy", new Error("busy"));
    const result = await w.orchestrator.export("box", {});
    expect(result.auto_tore_down).toBe(false);
    expect(w.logger.messages("debug")).toContain(
      "the automatic teardown of 'box' after its export failed; going on",
    );
  });
});
