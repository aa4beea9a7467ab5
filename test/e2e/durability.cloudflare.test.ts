import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, fetchLink, filesContaining, makeEnv, processArgs, SECRETS, waitFor } from "./env.ts";
import { CONTROL_PLANE_TOKEN, providerUnderTest } from "./providers.ts";
import type { treeDigest } from "./tree.ts";

/**
 * Durability against the control plane in workerd (`alpine cloud dev`): the
 * orchestrator runs in the sandbox's Durable Object, checkpoints go to local
 * R2, and the CLI only talks HTTP. Export to the authenticated git server,
 * checkpointed teardown, export from the checkpoint, resume with the work
 * intact. (Corrupted-artifact refusal is in packages/worker/test, which can
 * reach R2 directly.)
 */
const p = providerUnderTest("cloudflare");
let e: E2EEnv;
let id = "";
const argSamples: string[] = [];
const outputs: string[] = [];
const alpine = async (...args: string[]) => {
  const r = await runCli(args, { env: e.env, cwd: e.cwd });
  outputs.push(r.stdout, r.stderr);
  argSamples.push(...processArgs());
  return r;
};
const ws = () => p.workspace(e.alpineHome, id);

/** Session ids OpenCode lists, read through the control plane's UI route with a one-time login. */
async function sessions(name: string): Promise<string[]> {
  const link = (await alpine("open", name, "--print", "--json")).json().web_url as string;
  const login = await fetchLink(link, { redirect: "manual" });
  expect(login.status).toBe(302);
  const cookies = login.headers.getSetCookie().map((c) => c.split(";")[0]!);
  // sandboxd's session cookie only: the sandbox's own origin needs no routing cookie.
  expect(cookies.some((c) => c.startsWith("alpine_session_"))).toBe(true);
  expect(cookies.some((c) => c.startsWith("alpine_ui="))).toBe(false);
  // A bounded wait, so a sandbox whose OpenCode hangs fails here with a clear message.
  const res = await fetchLink(`${new URL(link).origin}/session`, {
    headers: { cookie: cookies.join("; ") },
    signal: AbortSignal.timeout(45_000),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { id: string }[]).map((s) => s.id).sort();
}

beforeAll(async () => {
  e = await makeEnv({ yaml: p.yaml });
  Object.assign(e.env, p.env);
  // The alarm looks at live sandboxes every 10 s instead of 60: a SIGTERMed runtime's exit
  // checkpoint is then copied well within the 60 s grace `terminate()` allows.
  await p.start?.(e, { vars: { ALARM_INTERVAL_SECONDS: "10" } });
});

// A failed step shows what the control plane was doing meanwhile.
afterEach((ctx) => {
  if (ctx.task.result?.state === "fail") console.error(p.diagnostics?.());
});

afterAll(async () => {
  if (!e) return;
  for (const n of ["durable", "rollout"]) await alpine("teardown", n, "--force", "--json").catch(() => {});
  await p.stop?.();
  await e.close();
});

describe("durability of a cloudflare sandbox (alpine cloud dev)", () => {
  let before: ReturnType<typeof treeDigest>;
  let sessionsBefore: string[] = [];

  it("launches with a task; the agent writes a file", async () => {
    const r = await alpine(
      "launch",
      "durable",
      "--repo",
      e.repoUrl,
      "--task",
      "WRITE NOTES.md from the agent",
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ provider: "cloudflare", task_accepted: true });
    id = r.json().id;
    await waitFor(
      "completion",
      async () => (await alpine("status", "durable", "--json")).json().state === "completed",
      {
        timeoutMs: 90_000,
      },
    );
  });

  it("a checkpoint is verified in R2; status then shows nothing unsaved", async () => {
    await ws().write("src/main.txt", "hello, changed\n");
    await ws().git("commit", "-qam", "agent commit");
    await ws().write("deep/er/run.sh", "#!/bin/sh\necho run\n", 0o755);
    await ws().write("blob.bin", Buffer.from([0, 1, 2, 255, 254, 0, 10, 13]));
    const r = await alpine("checkpoint", "durable", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const cp = r.json();
    expect(cp).toMatchObject({ name: "durable", verified: true });
    expect(cp.content_hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    const status = (await alpine("status", "durable", "--json")).json();
    expect(status.durability).toMatchObject({ checkpoint_id: cp.checkpoint_id, verified: true });
    expect(status.teardown.blockers).toEqual([]);
  });

  it("teardown checkpoints unsaved work, then destroys the runtime", async () => {
    await ws().write("late.txt", "written after the checkpoint\n");
    expect((await alpine("status", "durable", "--json")).json().teardown.blockers).toContain(
      "unsaved_changes",
    );
    before = await ws().digest();
    sessionsBefore = await sessions("durable");
    expect(sessionsBefore.length).toBeGreaterThan(0);
    const r = await alpine("teardown", "durable", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ name: "durable", state: "destroyed", destroyed: true, forced: false });
    expect(r.json().checkpoint_id).toMatch(/^ckpt_/);
    expect(await p.leftovers(e.alpineHome, id)).toEqual([]);
  });

  it("export --patch from the destroyed sandbox is made from its checkpoint (in a short-lived runtime)", async () => {
    const patch = join(e.root, "work.patch");
    const r = await alpine("export", "durable", "--patch", patch, "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ source: "checkpoint", pushed: false, state: "destroyed" });
    const text = readFileSync(patch, "utf8");
    for (const s of ["NOTES.md", "late.txt", "+hello, changed"]) expect(text).toContain(s);
  });

  it("resume restores the workspace byte for byte, the branch and its commits, and the OpenCode sessions", async () => {
    const r = await alpine("launch", "durable", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ state: "running", resumed: true, branch: "alpine/durable" });
    const after = await ws().digest();
    expect(after.files).toEqual(before.files);
    expect(after.digest).toBe(before.digest);
    expect(await ws().git("log", "--format=%s", "-1")).toBe("agent commit");
    expect(await ws().git("status", "--porcelain")).toContain("?? late.txt");
    expect(await sessions("durable")).toEqual(sessionsBefore);
  });

  it("export pushes to the authenticated git server", async () => {
    // (Leases across concurrent requests are tested deterministically in packages/worker/test/leases.test.ts;
    // from here the export is often done before a second CLI process could start.)
    const r = await alpine("export", "durable", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const stdout = r.stdout;
    const out = JSON.parse(stdout);
    expect(out).toMatchObject({
      name: "durable",
      source: "workspace",
      pushed: true,
      branch: "alpine/durable",
    });
    expect(await e.git.readRef("app", "refs/heads/alpine/durable")).toBe(out.commit);
    const files = await e.git.listFiles("app", out.commit);
    expect(files).toEqual(expect.arrayContaining(["NOTES.md", "late.txt", "deep/er/run.sh", "blob.bin"]));
    expect(await e.git.readFile("app", out.commit, "src/main.txt")).toBe("hello, changed\n");
    expect(e.git.requests.some((q) => q.authorized)).toBe(true);
    const status = (await alpine("status", "durable", "--json")).json();
    expect(status.export).toMatchObject({ branch: "alpine/durable", commit: out.commit });
    expect(status.teardown.blockers).toEqual([]);
  });

  it("launch --no-wait returns once the Durable Object has started the launch; status follows it", async () => {
    expect((await alpine("teardown", "durable", "--json")).code).toBe(0);
    const r = await alpine("launch", "durable", "--no-wait", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.json();
    expect(out).toMatchObject({ name: "durable", web_url: null, reused: false, task_accepted: false });
    expect(["provisioning", "running"]).toContain(out.state);
    const running = await waitFor(
      "the background launch",
      async () => {
        const s = (await alpine("status", "durable", "--json")).json();
        return s.state === "running" ? s : null;
      },
      { timeoutMs: 90_000 },
    );
    expect(running.workspace.changed_files).toContainEqual({ path: "late.txt", status: "added" });
  });

  // Issue 15, finding 6: a redeploy with the default rollout sends every container SIGTERM and
  // starts its replacement on a fresh disk. sandboxd must save within the grace period (its
  // SIGTERM checkpoint is sandboxd's side of this, in packages/sandboxd).
  it("SIGTERM of a busy container (a rollout): the next launch resumes with nothing lost", async () => {
    const r = await alpine(
      "launch",
      "rollout",
      "--repo",
      e.repoUrl,
      "--task",
      "SLEEP 120000 WRITE SLOW.md the agent is still working",
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rid = r.json().id as string;
    await waitFor("the agent busy", async () => {
      const s = (await alpine("status", "rollout", "--json")).json();
      return s.runtime?.agent === "busy";
    });
    const files = p.workspace(e.alpineHome, rid);
    // Work no checkpoint has seen: a commit, an edit, an untracked file.
    await files.write("src/main.txt", "changed before the rollout\n");
    await files.git("commit", "-qam", "work before the rollout");
    await files.write("unsaved.txt", "written after the last checkpoint\n");
    const before = await files.digest();

    await p.terminate!(e.alpineHome, rid);

    try {
      const l = await alpine("launch", "rollout", "--json");
      expect(l.code, l.stdout + l.stderr).toBe(0);
      expect(l.json()).toMatchObject({ name: "rollout", state: "running" });
      const after = await files.digest();
      expect(after.files).toEqual(before.files);
      expect(after.digest).toBe(before.digest);
      expect(await files.git("log", "--format=%s", "-1")).toBe("work before the rollout");
    } finally {
      // A running sandbox holds its model credentials on disk: the secrets scan below expects none.
      await alpine("teardown", "rollout", "--force", "--json");
    }
  });

  it("no secret is stored by the control plane (DO SQLite, R2), printed, or put in process arguments", async () => {
    await alpine("teardown", "durable", "--force", "--json");
    const secrets = [SECRETS.gitToken, SECRETS.modelKey, SECRETS.forbiddenKey, CONTROL_PLANE_TOKEN];
    expect(filesContaining(join(e.alpineHome, "cloud-dev", "state"), secrets)).toEqual([]);
    expect(filesContaining(e.alpineHome, secrets)).toEqual([]);
    for (const out of outputs) for (const s of secrets) expect(out).not.toContain(s);
    for (const args of argSamples) for (const s of secrets) expect(args).not.toContain(s);
  });
});
