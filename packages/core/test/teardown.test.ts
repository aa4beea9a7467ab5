import { describe, expect, it } from "vitest";
import { AlpineError } from "../src/index.ts";
import { launched, world } from "./fakes/world.ts";

describe("teardown", () => {
  it("destroys a clean, idle sandbox without a checkpoint", async () => {
    const w = world();
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    const result = await w.orchestrator.teardown("box", { force: false });
    expect(result).toMatchObject({ destroyed: true, checkpoint_id: null });
    expect(result.record).toMatchObject({ state: "destroyed", runtime: null, agent: "unknown", error: null });
    // health: whether it suspended itself (it answers: no); status: the teardown's probe.
    expect(sandboxd.calls).toEqual(["init", "health", "status", "shutdown"]);
    expect(w.provider.runtimes.size).toBe(0);
    expect(w.store.transitions("box").slice(-2)).toEqual(["running→tearing_down", "tearing_down→destroyed"]);
  });

  it("checkpoints unsaved work first, then destroys", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.sandboxd(record.id).edit("a.ts");
    const result = await w.orchestrator.teardown("box", { force: false });
    expect(result.checkpoint_id).toMatch(/^ckpt_/);
    expect(result.record.checkpoint?.id).toBe(result.checkpoint_id);
    expect(w.store.transitions("box").slice(-3)).toEqual([
      "running→saving",
      "saving→tearing_down",
      "tearing_down→destroyed",
    ]);
    expect(w.steps).toContain("teardown.checkpointed");
  });

  it("refuses while the agent is busy; --force stops it anyway", async () => {
    const w = world();
    await launched(w, "box", { task: "work" });
    await expect(w.orchestrator.teardown("box", { force: false })).rejects.toMatchObject({
      reason: "teardown_requires_force",
      details: { blockers: ["agent_busy"] },
    });
    expect(w.record().state).toBe("running");
    expect((await w.orchestrator.teardown("box", { force: true })).destroyed).toBe(true);
    expect(w.store.log.find((e) => e.to === "tearing_down")?.reason).toBe("teardown --force");
  });

  it("refuses a sandbox that does not answer, naming its unsaved state", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.crash(record.id);
    await expect(w.orchestrator.teardown("box", { force: false })).rejects.toMatchObject({
      reason: "teardown_blocked",
      details: {
        blockers: ["runtime_unreachable"],
        unsaved_files: [],
        unsaved_commits: 0,
        last_checkpoint: null,
      },
    });
  });

  it("refuses an errored sandbox whose provider kept its workspace", async () => {
    const w = world();
    w.provider.fail.set("endpoint", new Error("daemon gone"));
    await launched(w).catch(() => null);
    w.provider.fail.delete("endpoint");
    expect(w.record().state).toBe("error");
    // The runtime exists but its sandboxd never cloned: nothing kept.
    expect(await w.orchestrator.teardown("box", { force: false })).toMatchObject({ destroyed: true });

    const v = world();
    const record = await launched(v);
    v.provider.sandboxd(record.id).edit("a");
    v.provider.crash(record.id);
    v.provider.fail.set("start", new Error("no start"));
    await expect(v.orchestrator.launch({ name: "box" })).rejects.toThrow("no start");
    expect((await v.orchestrator.probe(v.record())).kept_workspace).toBe(true);
    await expect(v.orchestrator.teardown("box", { force: false })).rejects.toMatchObject({
      reason: "teardown_blocked",
    });
  });

  describe("a sandbox kept for inspection after its setup failed", () => {
    const setupFailed = async () => {
      const w = world();
      w.provider.setupFailure = new AlpineError("setup_failed", "setup failed: sh setup.sh exited 3", {
        tail: ["error: the build broke here"],
      });
      await expect(launched(w)).rejects.toMatchObject({ reason: "setup_failed" });
      const record = w.record();
      expect(record).toMatchObject({ state: "error", error: { reason_code: "setup_failed" } });
      return { w, sandboxd: w.provider.sandboxd(record.id) };
    };

    it("is probed, read and opened like a live one (its runtime was left running)", async () => {
      const { w, sandboxd } = await setupFailed();
      const found = await w.orchestrator.probe(w.record());
      expect(found).toMatchObject({
        state: "ok",
        status: { phase: "failed", error: { reason_code: "setup_failed" } },
      });
      sandboxd.edit("package-lock.json");
      const client = await w.orchestrator.connect(w.record());
      expect((await client.diff({ stat: true })).files.map((f) => f.path)).toEqual(["package-lock.json"]);
      // It takes no task until launched again.
      await expect(w.orchestrator.task("box", "go")).rejects.toMatchObject({ reason: "sandbox_not_running" });
    });

    it("a clean one is torn down without --force", async () => {
      const { w } = await setupFailed();
      expect(await w.orchestrator.teardown("box", { force: false })).toMatchObject({
        destroyed: true,
        checkpoint_id: null,
      });
      expect(w.store.transitions("box").slice(-2)).toEqual(["error→tearing_down", "tearing_down→destroyed"]);
    });

    it("unsaved work in it is checkpointed first, as any sandbox's", async () => {
      const { w, sandboxd } = await setupFailed();
      sandboxd.edit("package-lock.json");
      const result = await w.orchestrator.teardown("box", { force: false });
      expect(result.checkpoint_id).toMatch(/^ckpt_/);
      expect(w.store.transitions("box").slice(-3)).toEqual([
        "error→saving",
        "saving→tearing_down",
        "tearing_down→destroyed",
      ]);
    });

    it("a failed checkpoint leaves it in error, kept; one that stopped answering is refused", async () => {
      const { w, sandboxd } = await setupFailed();
      sandboxd.edit("a.ts");
      sandboxd.fail.set("checkpoint", new Error("disk full"));
      await expect(w.orchestrator.teardown("box", { force: false })).rejects.toMatchObject({
        reason: "teardown_blocked",
        details: { blockers: ["unsaved_changes"] },
      });
      expect(w.record()).toMatchObject({ state: "error", error: { reason_code: "setup_failed" } });
      expect(w.provider.runtimes.size).toBe(1);

      w.provider.crash(w.record().id);
      const found = await w.orchestrator.probe(w.record());
      expect(found).toMatchObject({ state: "unavailable", kept_workspace: true });
      await expect(w.orchestrator.teardown("box", { force: false })).rejects.toMatchObject({
        reason: "teardown_blocked",
        details: { blockers: ["runtime_unreachable"] },
      });
    });
  });

  it("a probe that cannot tell whether a workspace was kept says no, logged", async () => {
    const w = world();
    w.provider.fail.set("endpoint", new Error("daemon gone"));
    await launched(w).catch(() => null);
    w.provider.fail.set("hasWorkspace", new Error("docker down"));
    expect((await w.orchestrator.probe(w.record())).kept_workspace).toBe(false);
    expect(w.logger.messages("debug")).toContain("asking whether 'box' kept its workspace failed");
  });

  it("a checkpoint that fails blocks the teardown; nothing is destroyed", async () => {
    const w = world();
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.edit("a.ts");
    sandboxd.fail.set("checkpoint", new Error("disk full"));
    await expect(w.orchestrator.teardown("box", { force: false })).rejects.toMatchObject({
      reason: "teardown_blocked",
      details: { blockers: ["unsaved_changes"], unsaved_files: ["a.ts"] },
    });
    expect(w.record().state).toBe("running");
    expect(w.provider.runtimes.size).toBe(1);
  });

  it("a destroyed sandbox is left as it is", async () => {
    const w = world();
    await launched(w);
    const first = await w.orchestrator.teardown("box", { force: true });
    const again = await w.orchestrator.teardown("box", { force: false });
    expect(again).toEqual({ record: first.record, destroyed: false, checkpoint_id: null });
  });

  it("an unfinished launch goes through error", async () => {
    const w = world();
    await w.store.put(
      { ...(await launched(w)), state: "new", runtime: null, version: 100 },
      w.record().version,
      [],
    );
    const result = await w.orchestrator.teardown("box", { force: false });
    expect(result.destroyed).toBe(true);
    expect(w.store.transitions("box").slice(-3)).toEqual([
      "new→error",
      "error→tearing_down",
      "tearing_down→destroyed",
    ]);
  });

  it("a destroy that fails leaves the sandbox in error with the reason", async () => {
    const w = world();
    await launched(w);
    w.provider.fail.set("destroy", new AlpineError("provider_unavailable", "docker down"));
    await expect(w.orchestrator.teardown("box", { force: true })).rejects.toMatchObject({
      reason: "provider_unavailable",
    });
    expect(w.record()).toMatchObject({ state: "error", error: { reason_code: "provider_unavailable" } });
  });

  it("a sandboxd that does not take the shutdown is stopped anyway", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.sandboxd(record.id).fail.set("shutdown", new Error("refused"));
    expect((await w.orchestrator.teardown("box", { force: true })).destroyed).toBe(true);
    expect(w.logger.messages("debug")).toEqual(["shutting down the sandboxd of 'box' failed; going on"]);
  });

  it("a runtime that cannot be found is stopped and destroyed without a shutdown", async () => {
    const w = world();
    await launched(w);
    w.provider.fail.set("endpoint", new Error("inspect failed"));
    expect((await w.orchestrator.teardown("box", { force: true })).destroyed).toBe(true);
    expect(w.logger.messages("debug")).toEqual(["finding the runtime of 'box' failed; going on"]);
  });

  it("reports blockers for status", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "t" });
    const probe = await w.orchestrator.probe(record);
    expect(w.orchestrator.blockers(record, probe, { type: "launch" })).toEqual([
      "operation_in_progress",
      "agent_busy",
    ]);
  });
});
