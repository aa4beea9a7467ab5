import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { api, cliConfig, gitCredentials, waitFor } from "./helpers.ts";

const NAME = "life-one";

beforeAll(async () => {
  const r = await api("PUT", "/v1/auth", { entries: { stub: { type: "api", key: inject("modelKey") } } });
  expect(r.status).toBe(200);
});

afterAll(async () => {
  await api("POST", `/v1/sandboxes/${NAME}/teardown`, { force: true });
});

describe("a sandbox's lifecycle, enforced by the core orchestrator in its Durable Object", () => {
  it("launch clones through the dev container host, starts OpenCode and accepts the task", async () => {
    const r = await api("POST", `/v1/sandboxes/${NAME}/launch`, {
      repo: inject("repoUrl"),
      task: "SLEEP 1500 WRITE NOTES.md written in a container",
      config: cliConfig(),
      credentials: gitCredentials(),
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({
      name: NAME,
      state: "running",
      provider: "cloudflare",
      repo: inject("repoUrl"),
      branch: `alpine/${NAME}`,
      image_profile: "default",
      web_url: `http://cp.test/s/${NAME}/`,
      reused: false,
      resumed: false,
      task_accepted: true,
    });
    expect(r.body.session_id).toMatch(/^ses/);
    expect(r.body.id).toMatch(/^sbx_/);
  });

  it("status reports the live probe and moves running → completed when the task is done", async () => {
    const done = await waitFor("completed", async () => {
      const s = await api("GET", `/v1/sandboxes/${NAME}`);
      expect(s.status).toBe(200);
      return s.body.state === "completed" ? s.body : null;
    });
    expect(done.runtime).toMatchObject({ probe_state: "ok", phase: "ready", agent: "idle" });
    expect(done.workspace.changed_files).toContainEqual({ path: "NOTES.md", status: "added" });
    expect(done.teardown).toEqual({ auto_teardown: true, blockers: ["unsaved_changes"] });
    expect(done.task).toMatchObject({ state: "completed" });
  });

  it("list comes from the registry", async () => {
    const r = await api("GET", "/v1/sandboxes");
    expect(r.body).toContainEqual(
      expect.objectContaining({ name: NAME, state: "completed", provider: "cloudflare", agent: "idle" }),
    );
  });

  it("the lifecycle table is enforced: a checkpoint of a destroyed sandbox is refused, launch resumes it", async () => {
    const down = await api("POST", `/v1/sandboxes/${NAME}/teardown`, { config: cliConfig() });
    expect(down.status, JSON.stringify(down.body)).toBe(200);
    expect(down.body).toMatchObject({ name: NAME, state: "destroyed", destroyed: true, forced: false });
    // Unsaved work was checkpointed (verified in R2) before the runtime went.
    expect(down.body.checkpoint_id).toMatch(/^ckpt_/);
    const again = await api("POST", `/v1/sandboxes/${NAME}/checkpoint`, { config: cliConfig() });
    expect(again.status).toBe(409);
    expect(again.body.reason_code).toBe("sandbox_not_running");
    const task = await api("POST", `/v1/sandboxes/${NAME}/task`, { prompt: "hello" });
    expect(task.body.reason_code).toBe("sandbox_not_running");
    const logs = await api("GET", `/v1/sandboxes/${NAME}/logs`);
    const transitions = logs.body.events
      .filter((e: { kind: string }) => e.kind === "transition")
      .map((e: { to: string }) => e.to);
    expect(transitions).toEqual([
      "provisioning",
      "running",
      "completed",
      "saving",
      "tearing_down",
      "destroyed",
    ]);
  });

  it("a checkpoint corrupted in R2 is never restored: checkpoint_checksum_mismatch names the artifact; intact, it resumes", async () => {
    const status = (await api("GET", `/v1/sandboxes/${NAME}`)).body;
    const cp = status.durability.checkpoint_id as string;
    const key = `sandboxes/${status.id}/${cp}/artifacts/workspace.bundle`;
    const original = new Uint8Array(await (await env.CHECKPOINTS.get(key))!.arrayBuffer());
    expect(new TextDecoder().decode(original.slice(0, 15))).toBe("# v2 git bundle");
    const damaged = original.slice();
    const at = Math.floor(damaged.length / 2);
    damaged[at] = (damaged[at] ?? 0) ^ 0xff;
    await env.CHECKPOINTS.put(key, damaged);
    const refused = await api("POST", `/v1/sandboxes/${NAME}/launch`, {
      config: cliConfig(),
      credentials: gitCredentials(),
    });
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({
      reason_code: "checkpoint_checksum_mismatch",
      details: { artifact: "workspace.bundle", checkpoint_id: cp },
    });
    expect((await api("GET", `/v1/sandboxes/${NAME}`)).body.state).toBe("destroyed");
    await env.CHECKPOINTS.put(key, original);
    const resumed = await api("POST", `/v1/sandboxes/${NAME}/launch`, {
      config: cliConfig(),
      credentials: gitCredentials(),
    });
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body).toMatchObject({ state: "running", resumed: true });
    const diff = await api("GET", `/v1/sandboxes/${NAME}/diff`);
    expect(diff.body.patch).toContain("+written in a container");
  });
});
