import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, filesContaining, makeEnv, processesMatching, SECRETS, waitFor } from "./env.ts";
import { startWebhookReceiver, type WebhookReceiver } from "./fixtures/webhook-receiver.ts";

/**
 * The local provider's warm pool (`sandbox.warm_pool: 1`) end to end, on real
 * OpenCode under bubblewrap: a launch refills the pool when it is done, the
 * next new sandbox adopts the pre-started runtime, its agent works on the repo
 * cloned after OpenCode started, it resumes at the same path, and gc with the
 * pool off leaves no process and no runtime behind. The adopted sandbox sends its notifications
 * (config `notify`, which a warm runtime is started without) as itself, once.
 */
let e: E2EEnv;
const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 300_000 });
let adoptedFrom = "";
let hooks: WebhookReceiver;
const delivered = () => hooks.received.filter((r) => r.path === "/warm").map((r) => JSON.parse(r.body));

const pool = () =>
  existsSync(join(e.alpineHome, "pool"))
    ? readdirSync(join(e.alpineHome, "pool"))
        .filter((n) => n.endsWith(".json"))
        .map(
          (n) =>
            JSON.parse(readFileSync(join(e.alpineHome, "pool", n), "utf8")) as { id: string; dir: string },
        )
    : [];

/** Waits until the pool holds one runtime whose OpenCode answers; returns it. */
async function warmReady() {
  return waitFor(
    "a warm runtime with OpenCode up",
    async () => {
      const [entry] = pool();
      if (!entry) return null;
      const out = readFileSync(join(entry.dir, "sandboxd.out"), "utf8");
      if (!out.trim()) return null;
      const { port } = JSON.parse(out.split("\n")[0]!) as { port: number };
      const token = readFileSync(join(entry.dir, "token"), "utf8");
      const res = await fetch(`http://127.0.0.1:${port}/v1/status`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const status = (await res.json()) as { phase: string; opencode: { ready: boolean } };
      return status.opencode.ready && status.phase === "booting" ? entry : null;
    },
    { timeoutMs: 90_000, intervalMs: 300 },
  );
}

beforeAll(async () => {
  hooks = await startWebhookReceiver();
  e = await makeEnv({
    yaml: [
      "sandbox:",
      "  warm_pool: 1",
      "notify:",
      "  on: [done]",
      "  webhooks:",
      `    - url: ${hooks.url}/warm`,
    ],
  });
});

afterAll(async () => {
  for (const n of ["cold", "adopted"]) await alpine("teardown", n, "--force", "--json").catch(() => {});
  await runCli(["gc", "--json"], {
    env: { ...e.env, ALPINE_SANDBOX_WARM_POOL: "0" },
    cwd: e.cwd,
  }).catch(() => {});
  await e.close();
  await hooks?.close();
});

describe("warm pool (local provider)", () => {
  it("a launch fills the pool once it is done; a warm runtime holds no credentials", async () => {
    const r = await alpine("launch", "cold", "--repo", e.repoUrl, "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const cold = r.json();
    // The pool was empty: this one started its own runtime.
    expect(lstatSync(join(e.alpineHome, "sandboxes", cold.id)).isDirectory()).toBe(true);
    const entry = await warmReady();
    expect(entry.id).toMatch(/^warm-[0-9a-f]{16}$/);
    expect(readdirSync(join(entry.dir, "workspace"))).toEqual([]);
    const secrets = [SECRETS.modelKey, SECRETS.forbiddenKey, SECRETS.gitToken];
    expect(filesContaining(entry.dir, secrets)).toEqual([]);
    expect(filesContaining(join(e.alpineHome, "pool"), secrets)).toEqual([]);
  });

  it("a new sandbox adopts the warm runtime; its agent works on the repo cloned after OpenCode started", async () => {
    const warm = await warmReady();
    const warmPid = Number(readFileSync(join(warm.dir, "sandboxd.pid"), "utf8"));
    const r = await alpine(
      "launch",
      "adopted",
      "--repo",
      e.repoUrl,
      "--task",
      "WRITE NOTES.md written by an adopted agent",
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.json();
    expect(out).toMatchObject({ state: "running", task_accepted: true, branch: "alpine/adopted" });
    adoptedFrom = warm.id;
    // It lives at the warm runtime's path, in that runtime's sandboxd.
    const link = join(e.alpineHome, "sandboxes", out.id);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(warm.id);
    expect(pool().map((p) => p.id)).not.toContain(warm.id);
    expect(readFileSync(join(warm.dir, "logs", "sandboxd.log"), "utf8")).toContain('"msg":"adopted"');
    expect(Number(readFileSync(join(warm.dir, "sandboxd.pid"), "utf8"))).toBe(warmPid);

    const done = await waitFor(
      "the task to complete",
      async () => {
        const s = (await alpine("status", "adopted", "--json")).json();
        if (s.task?.state === "failed") throw new Error(`the task failed: ${JSON.stringify(s)}`);
        return s.state === "completed" ? s : null;
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    expect(done.workspace.changed_files).toEqual([{ path: "NOTES.md", status: "added" }]);
    expect(readFileSync(join(warm.dir, "workspace", "NOTES.md"), "utf8")).toContain(
      "written by an adopted agent",
    );
    expect(readFileSync(join(warm.dir, "workspace", "README.md"), "utf8")).toBe("# app\n");
    // The credentials came with the adoption: the model saw the allowed key, never the other.
    const keys = e.model.requests.map((q) => q.authorization);
    expect(keys).toContain(`Bearer ${SECRETS.modelKey}`);
    expect(keys).not.toContain(`Bearer ${SECRETS.forbiddenKey}`);
    const diff = (await alpine("diff", "adopted", "--json")).json();
    expect(diff.files.map((f: { path: string }) => f.path)).toEqual(["NOTES.md"]);
    // Its notification, sent by the adopted sandboxd as the sandbox that adopted it.
    await waitFor("the adopted sandbox's notification", async () => delivered().length > 0, {
      timeoutMs: 30_000,
    });
    expect(delivered()).toEqual([
      expect.objectContaining({
        event: "done",
        sandbox: { id: out.id, name: "adopted" },
        task: expect.objectContaining({ prompt_summary: "WRITE NOTES.md written by an adopted agent" }),
      }),
    ]);
  }, 300_000);

  it("the pool is refilled with another runtime after the adoption", async () => {
    const next = await warmReady();
    expect(next.id).not.toBe(adoptedFrom);
  });

  it("an adopted sandbox is checkpointed, torn down and resumed at the same path", async () => {
    const down = await alpine("teardown", "adopted", "--json");
    expect(down.code, down.stdout + down.stderr).toBe(0);
    expect(down.json()).toMatchObject({ state: "destroyed", destroyed: true });
    const dir = join(e.alpineHome, "sandboxes", adoptedFrom);
    expect(existsSync(dir)).toBe(false);
    const up = await alpine("launch", "adopted", "--json");
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expect(up.json()).toMatchObject({ state: expect.stringMatching(/running|completed/), resumed: true });
    // Restored where OpenCode's sessions say the workspace is: not a warm runtime of its own.
    expect(readFileSync(join(dir, "workspace", "NOTES.md"), "utf8")).toContain("written by an adopted agent");
    expect(readFileSync(join(dir, "logs", "sandboxd.log"), "utf8")).not.toContain('"msg":"adopted"');
    // The resumed sandboxd reads the same ledger ($ALPINE_HOME/notify): nothing is sent again.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(delivered()).toHaveLength(1);
  });

  it("gc with the pool off stops and removes every warm runtime; no process is left", async () => {
    for (const n of ["cold", "adopted"]) {
      const r = await alpine("teardown", n, "--force", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    const gc = await runCli(["gc", "--json"], {
      env: { ...e.env, ALPINE_SANDBOX_WARM_POOL: "0" },
      cwd: e.cwd,
    });
    expect(gc.code, gc.stdout + gc.stderr).toBe(0);
    expect(pool()).toEqual([]);
    const left = readdirSync(join(e.alpineHome, "sandboxes")).filter((n) => {
      try {
        return !lstatSync(join(e.alpineHome, "sandboxes", n)).isSymbolicLink();
      } catch {
        return false;
      }
    });
    expect(left).toEqual([]);
    await waitFor("no sandbox processes", async () => processesMatching(e.alpineHome).length === 0, {
      timeoutMs: 30_000,
    });
  });
});
