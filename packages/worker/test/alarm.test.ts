import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { api, cliConfig, gitCredentials, waitFor } from "./helpers.ts";

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
    await launch(name, "WRITE I.md idle work", cliConfig({ sandbox: { completed_retention_minutes: 600 } }));
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
  });
});
