import { describe, expect, it } from "vitest";
import { IDLE_SUSPEND_LOG_MESSAGE } from "../src/index.ts";
import { launched, world } from "./fakes/world.ts";

const FINISHED = "2026-01-01T00:05:00.000Z";
const MIN = 60_000;

/** A sandbox whose agent finished its task and then stayed idle for `idleMin` minutes. */
async function idleSandbox(opts: { keepsWorkspace: boolean; idleMin: number }) {
  const w = world();
  w.provider.keepsWorkspace = opts.keepsWorkspace;
  const record = await launched(w, "box", { task: "work" });
  const sandboxd = w.provider.sandboxd(record.id);
  sandboxd.edit("src/a.ts");
  sandboxd.finishTask("completed", FINISHED);
  w.clock.ms = Date.parse(FINISHED) + opts.idleMin * MIN;
  return { w, record, sandboxd };
}

describe("suspend (the control plane's alarm)", () => {
  it("where the disk dies with the runtime: checkpoints unsaved work, stops the runtime, records suspended", async () => {
    const { w, record, sandboxd } = await idleSandbox({ keepsWorkspace: false, idleMin: 31 });
    const tree = sandboxd.workspace?.tree_hash;
    const result = await w.orchestrator.suspend("box");
    expect(result.suspended).toBe(true);
    const after = w.record();
    expect(after).toMatchObject({
      state: "suspended",
      suspension: { saved: "checkpoint", from: "running" },
      checkpoint: { verified: true, tree_hash: tree },
    });
    expect(after.suspension?.disk_bytes).toBe(after.checkpoint?.bytes);
    expect(w.store.transitions("box").slice(-3)).toEqual([
      "running→saving",
      "saving→running",
      "running→suspended",
    ]);
    expect(w.provider.runtime(`rt_${record.id}`).running).toBe(false);
    expect(w.provider.ops()).not.toContain("destroy");

    // A command that needs it brings it back from that checkpoint.
    const checkpointId = after.checkpoint?.id;
    const resumed = await w.orchestrator.resume("box");
    expect(resumed).toMatchObject({ state: "running", suspension: null });
    expect(w.provider.sandboxd(record.id).restoredFrom?.checkpoint_id).toBe(checkpointId);
    expect(w.store.transitions("box").slice(-2)).toEqual(["suspended→provisioning", "provisioning→running"]);
  });

  it("where the disk is kept: no checkpoint, the workspace stays", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: true, idleMin: 31 });
    expect((await w.orchestrator.suspend("box")).suspended).toBe(true);
    expect(w.record()).toMatchObject({
      state: "suspended",
      checkpoint: null,
      suspension: { saved: "kept_workspace" },
    });
    await w.orchestrator.resume("box");
    expect(w.provider.sandboxd(record.id).restoredFrom).toBeFalsy();
    expect(w.provider.sandboxd(record.id).workspace?.changed_files.map((f) => f.path)).toEqual(["src/a.ts"]);
  });

  it("keeps a busy agent, a recent one, and one whose lease another operation holds", async () => {
    const busy = world();
    const rec = await launched(busy, "box", { task: "work" });
    busy.clock.ms += 120 * MIN;
    expect(await busy.orchestrator.suspend("box")).toMatchObject({ suspended: false, why: "agent_busy" });
    expect(busy.record().state).toBe("running");
    expect(busy.provider.runtime(`rt_${rec.id}`).running).toBe(true);

    const recent = await idleSandbox({ keepsWorkspace: false, idleMin: 10 });
    expect(await recent.w.orchestrator.suspend("box")).toMatchObject({ suspended: false, why: "recent" });
    expect(recent.w.record().state).toBe("running");

    const leased = await idleSandbox({ keepsWorkspace: false, idleMin: 31 });
    await leased.w.store.compareAndSwapLease("box", null, {
      id: "lease_other",
      type: "export",
      holder: "other",
      host: leased.w.host.host,
      pid: leased.w.host.pid,
      operation_id: "op_other",
      acquired_at: new Date(leased.w.clock.ms).toISOString(),
      expires_at: new Date(leased.w.clock.ms + 30_000).toISOString(),
    });
    await expect(leased.w.orchestrator.suspend("box")).rejects.toMatchObject({
      reason: "operation_in_progress",
    });
    expect(leased.w.record().state).toBe("running");
  });
});

describe("a runtime that suspended itself (local, docker)", () => {
  const line = JSON.stringify({
    ts: "2026-01-01T00:40:00.000Z",
    level: "info",
    msg: IDLE_SUSPEND_LOG_MESSAGE,
    idle_ms: 35 * MIN,
    disk_bytes: 4096,
    workspace: { dirty: true, ahead: 0, tree_hash: "t1" },
  });

  it("is recorded suspended by the next look (status's reconcile, list), and resumed by a command that needs it", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: true, idleMin: 35 });
    // What sandboxd does by itself: logs the line and stops.
    w.provider.logLines = [JSON.stringify({ msg: "listening" }), line, JSON.stringify({ msg: "stopped" })];
    w.provider.runtime(`rt_${record.id}`).running = false;

    const listed = await w.orchestrator.listNoticingSuspensions();
    expect(listed.map((r) => r.state)).toEqual(["suspended"]);
    expect(w.record()).toMatchObject({
      state: "suspended",
      suspension: {
        saved: "kept_workspace",
        disk_bytes: 4096,
        workspace: { tree_hash: "t1" },
        from: "running",
      },
    });
    // status probes without resuming.
    const found = await w.orchestrator.probe(w.record());
    expect((await w.orchestrator.reconcile(w.record(), found)).state).toBe("suspended");

    const back = await w.orchestrator.resume("box");
    expect(back.state).toBe("running");
    expect(w.provider.runtime(`rt_${record.id}`).running).toBe(true);
  });

  it("a runtime still stopping after saying so (API closed, process alive) is recorded once it is gone", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: true, idleMin: 35 });
    w.provider.logLines = [line];
    const sandboxd = w.provider.sandboxd(record.id);
    // Its API is closed; the process ends a second later.
    sandboxd.status = async () => {
      throw new Error("connect ECONNREFUSED");
    };
    sandboxd.health = async () => {
      throw new Error("connect ECONNREFUSED");
    };
    const runtime = w.provider.runtime(`rt_${record.id}`);
    const stopAt = w.clock.ms + 1000;
    const endpoint = w.provider.endpoint.bind(w.provider);
    let stopped = false;
    w.provider.endpoint = async (h) => {
      if (!stopped && w.clock.ms >= stopAt) {
        runtime.running = false;
        stopped = true;
      }
      return endpoint(h);
    };
    const back = await w.orchestrator.resume("box");
    expect(w.store.transitions("box")).toContain("running→suspended");
    expect(back.state).toBe("running");
  });

  it("a runtime that stopped without that line (a crash) is not taken for a suspended one", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: true, idleMin: 35 });
    w.provider.logLines = [
      JSON.stringify({ msg: "listening" }),
      JSON.stringify({ msg: "uncaught exception" }),
    ];
    w.provider.runtime(`rt_${record.id}`).running = false;
    const listed = await w.orchestrator.listNoticingSuspensions();
    expect(listed.map((r) => r.state)).toEqual(["running"]);
  });

  it("teardown of a suspended sandbox whose work is unsaved resumes it and checkpoints first", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: true, idleMin: 35 });
    w.provider.logLines = [line];
    w.provider.runtime(`rt_${record.id}`).running = false;
    // Nothing looked since it stopped: the teardown itself finds out it suspended itself.
    const result = await w.orchestrator.teardown("box", { force: false });
    expect(result.destroyed).toBe(true);
    expect(result.checkpoint_id).not.toBeNull();
    expect(w.store.transitions("box")).toEqual(
      expect.arrayContaining(["suspended→provisioning", "saving→tearing_down", "tearing_down→destroyed"]),
    );
  });
});

describe("suspend: what keeps a sandbox running, and what a suspension saves", () => {
  it("a runtime that does not answer is not suspended (nothing says its agent is idle)", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: false, idleMin: 31 });
    w.provider.sandboxd(record.id).fail.set("status", new Error("connect ECONNREFUSED"));
    expect(await w.orchestrator.suspend("box")).toMatchObject({
      suspended: false,
      why: "the runtime does not answer",
    });
    expect(w.provider.ops()).not.toContain("stop");
    expect(w.record().state).toBe("running");
  });

  it("a runtime that fails to stop is not recorded suspended", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: true, idleMin: 31 });
    w.provider.fail.set("stop", new Error("container did not stop"));
    expect(await w.orchestrator.suspend("box")).toMatchObject({
      suspended: false,
      why: "stopping failed: container did not stop",
    });
    expect(w.record().state).toBe("running");
    expect(w.store.transitions("box")).not.toContain("running→suspended");
    expect(w.provider.sandboxd(record.id).calls).toContain("shutdown");
  });

  it("where the disk dies: a checkpoint that fails keeps the runtime running with its work", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: false, idleMin: 31 });
    w.provider.sandboxd(record.id).fail.set("checkpoint", new Error("disk full"));
    await expect(w.orchestrator.suspend("box")).rejects.toThrow(/disk full/);
    expect(w.record().state).toBe("running");
    expect(w.provider.runtime(`rt_${record.id}`).running).toBe(true);
    expect(w.provider.sandboxd(record.id).workspace?.changed_files.map((f) => f.path)).toEqual(["src/a.ts"]);
  });

  it("where the disk dies: exported work never checkpointed is checkpointed, so the resume brings it back", async () => {
    const { w, record, sandboxd } = await idleSandbox({ keepsWorkspace: false, idleMin: 0 });
    await w.orchestrator.export("box", {});
    const tree = sandboxd.workspace?.tree_hash;
    expect(w.record()).toMatchObject({ checkpoint: null, export: { tree_hash: tree } });
    w.clock.ms += 31 * MIN;
    expect((await w.orchestrator.suspend("box")).suspended).toBe(true);
    expect(w.record()).toMatchObject({
      state: "suspended",
      suspension: { saved: "checkpoint" },
      checkpoint: { verified: true, tree_hash: tree },
    });
    await w.orchestrator.resume("box");
    expect(w.provider.sandboxd(record.id).restoredFrom?.tree_hash).toBe(tree);
  });

  it("where the disk dies: work exported after the last checkpoint is checkpointed, the resume does not go back", async () => {
    const { w, record, sandboxd } = await idleSandbox({ keepsWorkspace: false, idleMin: 0 });
    const first = await w.orchestrator.checkpoint("box");
    sandboxd.edit("src/b.ts");
    await w.orchestrator.export("box", {});
    const tree = sandboxd.workspace?.tree_hash;
    expect(first.manifest.tree_hash).not.toBe(tree);
    w.clock.ms += 31 * MIN;
    expect((await w.orchestrator.suspend("box")).suspended).toBe(true);
    expect(w.record().checkpoint).toMatchObject({ verified: true, tree_hash: tree });
    await w.orchestrator.resume("box");
    expect(w.provider.sandboxd(record.id).restoredFrom?.tree_hash).toBe(tree);
  });
});

describe("noticing a self-suspension: what it does not take for one", () => {
  const line = JSON.stringify({
    ts: "2026-01-01T00:40:00.000Z",
    level: "info",
    msg: IDLE_SUSPEND_LOG_MESSAGE,
    idle_ms: 35 * MIN,
    disk_bytes: 4096,
    workspace: { dirty: true, ahead: 0, tree_hash: "t1" },
  });

  it("a stopped runtime whose log cannot be read is left as it is, and the failure is logged", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: true, idleMin: 35 });
    w.provider.runtime(`rt_${record.id}`).running = false;
    w.provider.logs = async () => {
      throw new Error("log file gone");
    };
    const listed = await w.orchestrator.listNoticingSuspensions();
    expect(listed.map((r) => r.state)).toEqual(["running"]);
    expect(w.logger.messages()).toContain("reading the log of 'box' failed; going on");
  });

  it("while another command holds the sandbox, that one (or the next look) records it", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: true, idleMin: 35 });
    w.provider.logLines = [line];
    w.provider.runtime(`rt_${record.id}`).running = false;
    await w.store.compareAndSwapLease("box", null, {
      id: "lease_other",
      type: "export",
      holder: "other",
      host: w.host.host,
      pid: w.host.pid,
      operation_id: "op_other",
      acquired_at: new Date(w.clock.ms).toISOString(),
      expires_at: new Date(w.clock.ms + 30_000).toISOString(),
    });
    const listed = await w.orchestrator.listNoticingSuspensions();
    expect(listed.map((r) => r.state)).toEqual(["running"]);
    expect(w.store.transitions("box")).not.toContain("running→suspended");

    await w.store.compareAndSwapLease("box", "lease_other", null);
    expect((await w.orchestrator.listNoticingSuspensions()).map((r) => r.state)).toEqual(["suspended"]);
  });

  it("a runtime that said so but is still alive 30 s later is not recorded suspended", async () => {
    const { w, record } = await idleSandbox({ keepsWorkspace: true, idleMin: 35 });
    w.provider.logLines = [line];
    // Its API is closed, its process never ends.
    w.provider.sandboxd(record.id).fail.set("health", new Error("connect ECONNREFUSED"));
    const start = w.clock.ms;
    const listed = await w.orchestrator.listNoticingSuspensions();
    expect(listed.map((r) => r.state)).toEqual(["running"]);
    expect(w.clock.ms - start).toBeGreaterThanOrEqual(30_000);
    expect(w.store.transitions("box")).not.toContain("running→suspended");
  });
});
