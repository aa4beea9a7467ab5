import { describe, expect, it } from "vitest";
import { LEASE_TTL_MS } from "../src/index.ts";
import { launched, world } from "./fakes/world.ts";

describe("tasks", () => {
  it("refuses an empty prompt and a sandbox that is not live", async () => {
    const w = world();
    await launched(w);
    await expect(w.orchestrator.task("box", "  ")).rejects.toMatchObject({ reason: "usage_invalid" });
    await w.orchestrator.teardown("box", { force: true });
    await expect(w.orchestrator.task("box", "go")).rejects.toMatchObject({ reason: "sandbox_not_running" });
  });

  it("continues the sandbox's session", async () => {
    const w = world();
    await launched(w, "box", { task: "one" });
    const { session_id } = await w.orchestrator.task("box", "two");
    expect(session_id).toBe("ses_1");
    expect(w.record().task?.prompt_summary).toBe("two");
  });

  it("lets sandboxd pick the conversation: the record's session is only the fallback", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "one" });
    const sandboxd = w.provider.sandboxd(record.id);
    // The person moved to another session in the UI: sandboxd's conversation wins over the record's.
    sandboxd.conversation = "ses_ui";
    const { session_id } = await w.orchestrator.task("box", "two");
    expect(session_id).toBe("ses_ui");
    expect(sandboxd.lastTaskBody).toMatchObject({ fallback_session_id: "ses_1" });
    expect(sandboxd.lastTaskBody?.session_id).toBeUndefined();
    expect(w.record().task?.session_id).toBe("ses_ui");
  });

  it("--new-session asks sandboxd for a new session, which the record then holds", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "one" });
    const { session_id } = await w.orchestrator.task("box", "two", { newSession: true });
    expect(session_id).not.toBe("ses_1");
    expect(w.provider.sandboxd(record.id).lastTaskBody).toMatchObject({ new_session: true });
    expect(w.record().task?.session_id).toBe(session_id);
  });

  it("waitForTask polls on the clock until the task completes: running → completed", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "t" });
    const sandboxd = w.provider.sandboxd(record.id);
    const sleep = w.clock.sleep.bind(w.clock);
    w.clock.sleep = async (ms) => {
      if (w.clock.slept.length === 2) sandboxd.finishTask();
      await sleep(ms);
    };
    const done = await w.orchestrator.waitForTask("box", { pollMs: 250 });
    expect(done.state).toBe("completed");
    expect(done.task?.finished_at).toBe("2026-01-01T00:05:00.000Z");
    expect(w.clock.slept).toEqual([250, 250, 250]);
    expect(w.store.log.at(-1)?.reason).toBe("task completed");
  });

  it("waitForTask gives up at its timeout with the sandbox still running", async () => {
    const w = world();
    await launched(w, "box", { task: "t" });
    const record = await w.orchestrator.waitForTask("box", { timeoutMs: 1000 });
    expect(record.state).toBe("running");
    expect(w.clock.slept.length).toBe(3);
  });

  it("a failed task is task_failed; the sandbox stays running with the agent in error", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "t" });
    w.provider.sandboxd(record.id).finishTask("failed");
    await expect(w.orchestrator.waitForTask("box")).rejects.toMatchObject({
      reason: "task_failed",
      details: { session_id: "ses_1" },
    });
    expect(w.record()).toMatchObject({ state: "running", agent: "error" });
  });

  it("a sandbox that stops answering is sandbox_unavailable", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "t" });
    w.provider.crash(record.id);
    await expect(w.orchestrator.waitForTask("box")).rejects.toMatchObject({ reason: "sandbox_unavailable" });
    w.provider.runtime(`rt_${record.id}`).running = true;
    w.provider.sandboxd(record.id).fail.set("status", new Error("ECONNREFUSED"));
    await expect(w.orchestrator.waitForTask("box")).rejects.toMatchObject({ reason: "internal_error" });
  });

  it("reconcile is skipped while another operation holds the sandbox", async () => {
    const w = world();
    const record = await launched(w, "box", { task: "t" });
    w.provider.sandboxd(record.id).finishTask();
    const probe = await w.orchestrator.probe(w.record());
    w.store.leases.set("box", {
      id: "l",
      type: "task",
      holder: "there:1",
      host: "there",
      pid: 1,
      operation_id: "op_x",
      acquired_at: w.clock.iso(),
      expires_at: new Date(w.clock.now() + LEASE_TTL_MS).toISOString(),
    });
    expect((await w.orchestrator.reconcile(w.record(), probe)).state).toBe("running");
    w.store.leases.clear();
    expect((await w.orchestrator.reconcile(w.record(), probe)).state).toBe("completed");
  });

  it("reconcile records agent activity without a state change, and ignores probes that failed", async () => {
    const w = world();
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.agent = {
      state: "needs_input",
      last_activity: "2026-01-01T00:02:00.000Z",
      session_id: null,
    };
    const probe = await w.orchestrator.probe(w.record());
    const updated = await w.orchestrator.reconcile(w.record(), probe);
    expect(updated).toMatchObject({ state: "running", agent: "needs_input" });
    expect(await w.orchestrator.reconcile(updated, probe)).toEqual(updated);
    const down = { state: "unavailable" as const, at: null, status: null, error: null };
    expect(await w.orchestrator.reconcile(updated, down)).toBe(updated);
  });

  it("reconcile reports a store failure", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.sandboxd(record.id).agent = { state: "busy", last_activity: null, session_id: null };
    const probe = await w.orchestrator.probe(w.record());
    w.store.put = async () => {
      throw new Error("disk I/O error");
    };
    await expect(w.orchestrator.reconcile(w.record(), probe)).rejects.toThrow("disk I/O error");
  });

  it("reads records, events and connections", async () => {
    const w = world();
    const record = await launched(w);
    expect(await w.orchestrator.get("box")).toEqual(record);
    expect((await w.orchestrator.list()).map((r) => r.name)).toEqual(["box"]);
    expect((await w.orchestrator.events("box", { limit: 1 }))[0]?.reason).toBe(`created for ${record.repo}`);
    expect(await (await w.orchestrator.connect(record)).login()).toMatchObject({ code: "c" });
    await expect(w.orchestrator.get("nobody")).rejects.toMatchObject({ reason: "sandbox_not_found" });
    w.provider.crash(record.id);
    await expect(w.orchestrator.connect(record)).rejects.toMatchObject({
      reason: "sandbox_unavailable",
      details: { name: "box" },
    });
    expect(await w.orchestrator.probe(record)).toMatchObject({
      state: "unavailable",
      error: { reason: "sandbox_unavailable" },
    });
    await w.orchestrator.teardown("box", { force: true });
    await expect(w.orchestrator.connect(w.record())).rejects.toMatchObject({ reason: "sandbox_not_running" });
  });
});
