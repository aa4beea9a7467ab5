import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { api, call, cliConfig, gitCredentials, TOKEN, waitFor } from "./helpers.ts";

beforeAll(async () => {
  await api("PUT", "/v1/auth", { entries: { stub: { type: "api", key: inject("modelKey") } } });
});

async function launch(name: string, task: string, config = cliConfig()) {
  const r = await api("POST", `/v1/sandboxes/${name}/launch`, {
    repo: inject("repoUrl"),
    task,
    config,
    credentials: gitCredentials(),
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

const stateOf = async (name: string) => (await api("GET", `/v1/sandboxes/${name}`)).body;

/** What the audit log holds of the alarm's own actions on one sandbox (principal `system:alarm`). */
async function alarmAudit(name: string): Promise<{ action: string; outcome: string }[]> {
  const lines = (await api("GET", "/v1/audit?tail=1000")).body as {
    principal: string;
    action: string;
    sandbox: string | null;
    outcome: string;
  }[];
  return lines
    .filter((l) => l.principal === "system:alarm" && l.sandbox === name)
    .map((l) => ({ action: l.action, outcome: l.outcome }));
}

describe("the SandboxObject's alarm", () => {
  it("auto-teardown: a completed sandbox past its retention is checkpointed (unsaved work) and destroyed", async () => {
    const name = "alarm-retain";
    await launch(
      name,
      "WRITE R.md retained work",
      cliConfig({ sandbox: { completed_retention_minutes: 0 } }),
    );
    await waitFor("completed", async () => (await stateOf(name)).state === "completed");
    const stub = env.SANDBOX.getByName(name);
    expect(await runInDurableObject(stub, (_i, state) => state.storage.getAlarm())).not.toBeNull();
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const after = await stateOf(name);
    expect(after.state).toBe("destroyed");
    expect(after.durability).toMatchObject({ verified: true });
    const events = (await api("GET", `/v1/sandboxes/${name}/logs`)).body.events;
    expect(events.map((e: { to: string | null }) => e.to)).toEqual(
      expect.arrayContaining(["saving", "tearing_down", "destroyed"]),
    );
    expect(events.at(-1).reason).toMatch(/^auto-teardown/);
    // The audit log says who did it: the alarm, as its gc of a completed sandbox past retention.
    expect(await alarmAudit(name)).toEqual([{ action: "gc", outcome: "ok" }]);
    // Nothing live is left, so no further alarm.
    expect(await runInDurableObject(stub, (_i, state) => state.storage.getAlarm())).toBeNull();
    // The work is in R2: resume brings it back.
    const resumed = await api("POST", `/v1/sandboxes/${name}/launch`, {
      config: cliConfig(),
      credentials: gitCredentials(),
    });
    expect(resumed.body).toMatchObject({ state: "running", resumed: true });
    const diff = await api("GET", `/v1/sandboxes/${name}/diff`);
    expect(diff.body.files).toContainEqual(expect.objectContaining({ path: "R.md", status: "added" }));
    await api("POST", `/v1/sandboxes/${name}/teardown`, { force: true });
  });

  it("keeps a completed sandbox whose retention has not passed, and one with auto_teardown off", async () => {
    const name = "alarm-keep";
    await launch(
      name,
      "WRITE K.md kept",
      cliConfig({ sandbox: { auto_teardown: false, completed_retention_minutes: 0 } }),
    );
    await waitFor("completed", async () => (await stateOf(name)).state === "completed");
    const stub = env.SANDBOX.getByName(name);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await stateOf(name)).state).toBe("completed");
    // Rescheduled while live.
    expect(await runInDurableObject(stub, (_i, state) => state.storage.getAlarm())).not.toBeNull();
    // `alpine gc` against the control plane applies the same rule to every sandbox in the registry.
    const gc = await api("POST", "/v1/gc", {
      dry_run: true,
      config: cliConfig({ sandbox: { auto_teardown: false, completed_retention_minutes: 0 } }),
    });
    expect(gc.status).toBe(200);
    expect(gc.body.kept).toContainEqual({ name, reason: "auto_teardown is off" });
    expect(gc.body.torn_down).not.toContain(name);
    await api("POST", `/v1/sandboxes/${name}/teardown`, { force: true });
  });

  it("while the agent is busy the alarm only reconciles (and would renew the container); it completes the task afterwards", async () => {
    const name = "alarm-busy";
    await launch(
      name,
      "SLEEP 4000 WRITE S.md slow",
      cliConfig({ sandbox: { completed_retention_minutes: 60 } }),
    );
    const stub = env.SANDBOX.getByName(name);
    await waitFor("busy", async () => (await stateOf(name)).runtime.agent === "busy");
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const during = await runInDurableObject(stub, (_i, state) =>
      JSON.parse(
        state.storage.sql.exec<{ record: string }>("SELECT record FROM sandboxes").toArray()[0]!.record,
      ),
    );
    expect(during.state).toBe("running");
    expect(await runInDurableObject(stub, (_i, state) => state.storage.getAlarm())).not.toBeNull();
    // The alarm alone (no status call) notices the end of the task.
    await waitFor("the alarm to complete it", async () => {
      await runDurableObjectAlarm(stub);
      const r = await runInDurableObject(stub, (_i, state) =>
        JSON.parse(
          state.storage.sql.exec<{ record: string }>("SELECT record FROM sandboxes").toArray()[0]!.record,
        ),
      );
      return r.state === "completed";
    });
    await api("POST", `/v1/sandboxes/${name}/teardown`, { force: true });
  });

  it("an idle sandbox near its container's inactivity timeout is saved and stopped (destroyed), so no work is lost", async () => {
    const name = "alarm-idle";
    // Suspension off: near the timeout the sandbox is torn down (suspend.cloudflare.test.ts: on).
    await launch(
      name,
      "WRITE I.md idle work",
      cliConfig({ sandbox: { completed_retention_minutes: 600, suspend_after_minutes: 0 } }),
    );
    await waitFor("completed", async () => (await stateOf(name)).state === "completed");
    const stub = env.SANDBOX.getByName(name);
    // Pretend nothing touched it for three days (the test deployment's inactivity timeout is one day).
    await runInDurableObject(stub, async (instance, state) => {
      const row = state.storage.sql.exec<{ record: string }>("SELECT record FROM sandboxes").toArray()[0]!;
      const old = new Date(Date.now() - 3 * 86_400_000).toISOString();
      const record = { ...JSON.parse(row.record), last_activity: old };
      state.storage.sql.exec("UPDATE sandboxes SET record = ?", JSON.stringify(record));
      (instance as unknown as { lastActive: number }).lastActive = 0;
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const after = await stateOf(name);
    expect(after.state).toBe("destroyed");
    expect(after.durability).toMatchObject({ verified: true });
    const events = (await api("GET", `/v1/sandboxes/${name}/logs`)).body.events;
    expect(events.at(-1).reason).toMatch(/inactivity timeout/);
    expect(await alarmAudit(name)).toEqual([{ action: "teardown", outcome: "ok" }]);
  });

  it("an alarm whose work throws still arms the next one: the chain never ends", async () => {
    const name = "alarm-throws";
    await launch(name, "WRITE T.md t", cliConfig({ sandbox: { completed_retention_minutes: 600 } }));
    const stub = env.SANDBOX.getByName(name);
    type Patchable = { orchestrator?: () => never };
    await runInDurableObject(stub, (instance) => {
      (instance as unknown as Patchable).orchestrator = () => {
        throw new Error("simulated failure inside the alarm");
      };
    });
    // The platform would retry a throwing handler a few times, then drop it.
    await runDurableObjectAlarm(stub).catch(() => undefined);
    const next = await runInDurableObject(stub, (instance, state) => {
      delete (instance as unknown as Patchable).orchestrator;
      return state.storage.getAlarm();
    });
    expect(next).not.toBeNull();
    await api("POST", `/v1/sandboxes/${name}/teardown`, { force: true });
  });

  it("an operation whose client went away keeps an alarm within 30 s until it ends, so the object is not evicted under it", async () => {
    const name = "alarm-keepalive";
    await launch(name, "WRITE K0.md first", cliConfig({ sandbox: { completed_retention_minutes: 600 } }));
    await waitFor("completed", async () => (await stateOf(name)).state === "completed");
    const stub = env.SANDBOX.getByName(name);
    const armedIn = async () =>
      ((await runInDurableObject(stub, (_i, state) => state.storage.getAlarm())) ?? Number.NaN) - Date.now();
    const inFlight = () => runInDurableObject(stub, (i) => (i as unknown as { inFlight: number }).inFlight);
    const res = await call(`/v1/sandboxes/${name}/task`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKEN}`,
        "content-type": "application/json",
        accept: "application/x-ndjson",
      },
      body: JSON.stringify({ prompt: "SLEEP 6000 WRITE K.md kept", wait: true, config: cliConfig() }),
    });
    expect(res.status).toBe(200);
    // The client reads the first line and leaves; `task --wait` goes on in the object.
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    expect(await armedIn()).toBeLessThanOrEqual(30_000);
    expect(await inFlight()).toBe(1);
    // The keep-alive alarm fires while the operation runs, and arms the next one as close.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await armedIn()).toBeLessThanOrEqual(30_000);
    await waitFor("the abandoned task --wait to end", async () => (await inFlight()) === 0, 90_000);
    expect((await stateOf(name)).state).toBe("completed");
    // Nothing runs: back to the interval (600 s in these tests).
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await armedIn()).toBeGreaterThan(30_000);
    await api("POST", `/v1/sandboxes/${name}/teardown`, { force: true });
  });
});
