import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "./env.ts";
import { type GithubStub, startGithubStub } from "./fixtures/github-api.ts";
import { providerUnderTest } from "./providers.ts";

/**
 * Pull requests, require_auth and gc against `alpine cloud dev`: the GitHub
 * token travels with the one export request and the Durable Object opens the
 * pull request through the GitHub API stub; gc runs the orchestrator's rule in
 * every sandbox's object.
 */
const GH_TOKEN = "ghs_E2ECFPRTOKEN0123456789abcdef";
const p = providerUnderTest("cloudflare");
let e: E2EEnv;
let gh: GithubStub;
const outputs: string[] = [];
const alpine = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = await runCli(args, { env: { ...e.env, ...env }, cwd: e.cwd });
  outputs.push(r.stdout, r.stderr);
  return r;
};
const completed = (name: string) =>
  waitFor(
    `${name} to complete`,
    async () => (await alpine(["status", name, "--json"])).json().state === "completed",
    {
      timeoutMs: 90_000,
    },
  );

beforeAll(async () => {
  gh = await startGithubStub({ token: GH_TOKEN });
  e = await makeEnv({
    gitUser: "x-access-token",
    gitPassword: GH_TOKEN,
    repoName: "acme/app",
    yaml: [...p.yaml, "github:", `  api_url: ${gh.apiUrl}`],
  });
  // Only GITHUB_TOKEN carries the git credentials here.
  rmSync(join(e.home, ".git-credentials"));
  Object.assign(e.env, p.env);
  await p.start?.(e);
});

// A failed step shows what the control plane was doing meanwhile.
afterEach((ctx) => {
  if (ctx.task.result?.state === "fail") console.error(p.diagnostics?.());
});

afterAll(async () => {
  for (const n of ["pr", "gc-saved", "gc-unsaved"])
    await alpine(["teardown", n, "--force", "--json"]).catch(() => {});
  await p.stop?.();
  await gh.close();
  await e.close();
});

describe("export to GitHub and gc through the control plane", () => {
  it("require_auth: a push to a GitHub host without credentials fails before anything is pushed", async () => {
    const r = await alpine(
      ["launch", "pr", "--repo", e.repoUrl, "--task", "WRITE FEATURE.md a feature", "--json"],
      {
        GITHUB_TOKEN: GH_TOKEN,
      },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await completed("pr");
    const pushes = () => e.git.requests.filter((q) => q.path.includes("git-receive-pack")).length;
    const before = pushes();
    const x = await alpine(["export", "pr", "--json"], { GITHUB_TOKEN: "", GH_TOKEN: "" });
    expect(x.code).toBe(1);
    expect(x.json().reason_code).toBe("github_auth_missing");
    expect(pushes()).toBe(before);
  });

  it("export --pr pushes the branch and the Durable Object opens the pull request with the request's token", async () => {
    const r = await alpine(["export", "pr", "--pr", "--json"], { GITHUB_TOKEN: GH_TOKEN });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.json();
    expect(out).toMatchObject({ pushed: true, branch: "alpine/pr", source: "workspace", files_changed: 1 });
    expect(out.pr_url).toBe("https://github.example/acme/app/pull/1");
    expect(gh.pulls).toHaveLength(1);
    expect(gh.pulls[0]).toMatchObject({
      owner: "acme",
      repo: "app",
      authorization: `Bearer ${GH_TOKEN}`,
      body: { head: "alpine/pr", base: "main", title: "WRITE FEATURE.md a feature" },
    });
    expect(await e.git.readFile("acme/app", out.commit, "FEATURE.md")).toBe("a feature");
    expect((await alpine(["status", "pr", "--json"])).json().export.pr_url).toBe(out.pr_url);
  });

  it("gc tears down completed sandboxes whose work is saved and keeps the others with a reason", async () => {
    for (const n of ["gc-saved", "gc-unsaved"]) {
      const r = await alpine(["launch", n, "--repo", e.repoUrl, "--task", `WRITE ${n}.md work`, "--json"], {
        GITHUB_TOKEN: GH_TOKEN,
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      await completed(n);
    }
    expect((await alpine(["checkpoint", "gc-saved", "--json"])).code).toBe(0);
    const env = { ALPINE_SANDBOX_COMPLETED_RETENTION_MINUTES: "0" };
    const dry = await alpine(["gc", "--dry-run", "--json"], env);
    expect(dry.json()).toMatchObject({ dry_run: true });
    expect(dry.json().torn_down).toEqual(expect.arrayContaining(["gc-saved", "pr"]));
    expect(dry.json().kept).toContainEqual({ name: "gc-unsaved", reason: "unsaved_changes" });
    const real = await alpine(["gc", "--json"], env);
    expect(real.code, real.stdout + real.stderr).toBe(0);
    expect(real.json().torn_down).not.toContain("gc-unsaved");
    // Each sandbox's object keeps the config the last request brought, so its own alarm applies
    // the same zero retention (docs/cloudflare.md, "The alarm") and may get to a sandbox before
    // gc does: saved ones end destroyed whichever of the two tore them down...
    const state = async (n: string) => (await alpine(["status", n, "--json"])).json();
    for (const n of ["gc-saved", "pr"]) {
      await waitFor(`${n} to be destroyed`, async () => (await state(n)).state === "destroyed", {
        timeoutMs: 120_000,
      });
    }
    // ...and the unsaved one is either kept as it was (gc's rule) or, when its alarm got to it,
    // checkpointed before it was destroyed (the alarm's rule): its work is never dropped.
    const unsaved = await state("gc-unsaved");
    if (unsaved.state !== "completed") {
      await waitFor(
        "gc-unsaved's alarm teardown to end",
        async () => (await state("gc-unsaved")).state === "destroyed",
        {
          timeoutMs: 120_000,
        },
      );
      expect((await state("gc-unsaved")).durability?.checkpoint_id).toMatch(/\S/);
    }
    expect((await alpine(["gc", "--json"], env)).json().torn_down).toEqual([]);
    for (const out of outputs) expect(out).not.toContain(GH_TOKEN);
  }, 360_000); // two launches to completion, a checkpoint, three gc runs and teardowns (well under a minute alone)
});
