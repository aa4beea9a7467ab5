import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv, SECRETS, waitFor } from "./env.ts";
import { type GithubStub, startGithubStub } from "./fixtures/github-api.ts";

/** Pull requests through the GitHub API stub, auth sync round trip, require_auth, gc. */
const GH_TOKEN = "ghs_E2EPRTOKEN0123456789abcdef";
let e: E2EEnv;
let gh: GithubStub;
const alpine = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCli(args, { env: { ...e.env, ...env }, cwd: e.cwd });

async function completed(name: string) {
  await waitFor(
    `${name} to complete`,
    async () => (await alpine(["status", name, "--json"])).json().state === "completed",
    {
      timeoutMs: 90_000,
    },
  );
}

beforeAll(async () => {
  gh = await startGithubStub({ token: GH_TOKEN });
  // The git server plays github: it takes the token the way GitHub does (x-access-token).
  e = await makeEnv({
    gitUser: "x-access-token",
    gitPassword: GH_TOKEN,
    repoName: "acme/app",
    yaml: ["github:", `  api_url: ${gh.apiUrl}`, "sandbox:", "  completed_retention_minutes: 0"],
  });
  // Only GITHUB_TOKEN carries the credentials here: the git credential store is emptied.
  rmSync(join(e.home, ".git-credentials"));
});
afterAll(async () => {
  for (const n of ["pr", "gc-saved", "gc-unsaved"])
    await alpine(["teardown", n, "--force", "--json"]).catch(() => {});
  await gh.close();
  await e.close();
});

describe("export to GitHub, auth sync, gc", () => {
  it("auth sync copies only the chosen entries, whole, into a 0600 file, and they authenticate the agent", async () => {
    const r = await alpine(["auth", "sync", "--providers", "stub,absent", "--json"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json()).toEqual({
      providers: ["stub"],
      missing: ["absent"],
      target: join(e.alpineHome, "credentials.json"),
    });
    expect(r.stdout).not.toContain(SECRETS.modelKey);
    const file = join(e.alpineHome, "credentials.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ stub: { type: "api", key: SECRETS.modelKey } });
    // From now on only alpine's copy exists: the round trip must carry the key to the model.
    rmSync(join(e.home, ".local", "share", "opencode", "auth.json"));
    const before = e.model.requests.length;
    const launch = await alpine(
      ["launch", "pr", "--repo", e.repoUrl, "--task", "WRITE FEATURE.md a feature", "--json"],
      {
        GITHUB_TOKEN: GH_TOKEN,
      },
    );
    expect(launch.code, launch.stdout + launch.stderr).toBe(0);
    await completed("pr");
    const fresh = e.model.requests.slice(before);
    expect(fresh.length).toBeGreaterThan(0);
    expect(fresh.every((q) => q.authorization === `Bearer ${SECRETS.modelKey}`)).toBe(true);
  });

  it("require_auth: a push to a GitHub host without credentials fails before anything is attempted", async () => {
    const pushesBefore = e.git.requests.filter((q) => q.path.includes("git-receive-pack")).length;
    const r = await alpine(["export", "pr", "--json"], { GITHUB_TOKEN: "", GH_TOKEN: "" });
    expect(r.code).toBe(1);
    expect(r.json().reason_code).toBe("github_auth_missing");
    expect(e.git.requests.filter((q) => q.path.includes("git-receive-pack")).length).toBe(pushesBefore);
  });

  it("export --pr pushes the branch and opens a pull request with the right head, base, title and token", async () => {
    const r = await alpine(["export", "pr", "--pr", "--json"], { GITHUB_TOKEN: GH_TOKEN });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.json();
    expect(out).toMatchObject({ pushed: true, branch: "alpine/pr", source: "workspace", files_changed: 1 });
    expect(out.pr_url).toBe("https://github.example/acme/app/pull/1");
    expect(gh.pulls).toHaveLength(1);
    expect(gh.pulls[0]).toMatchObject({
      owner: "acme",
      repo: "app",
      authorization: `token ${GH_TOKEN}`,
      body: { head: "alpine/pr", base: "main", title: "WRITE FEATURE.md a feature" },
    });
    expect(await e.git.readRef("acme/app", "refs/heads/alpine/pr")).toBe(out.commit);
    expect(await e.git.readFile("acme/app", out.commit, "FEATURE.md")).toBe("a feature");
    // Retention 0 and auto_teardown: the completed, exported sandbox goes at once.
    expect(out.auto_tore_down).toBe(true);
    expect(out.state).toBe("destroyed");
    expect(r.stdout).not.toContain(GH_TOKEN);
  });

  it("gc tears down completed sandboxes whose work is saved, keeps the others with a reason, and is idempotent", async () => {
    for (const n of ["gc-saved", "gc-unsaved"]) {
      const r = await alpine(["launch", n, "--repo", e.repoUrl, "--task", `WRITE ${n}.md work`, "--json"], {
        GITHUB_TOKEN: GH_TOKEN,
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      await completed(n);
    }
    expect((await alpine(["checkpoint", "gc-saved", "--json"])).code).toBe(0);
    const dry = await alpine(["gc", "--dry-run", "--json"]);
    expect(dry.json()).toEqual({
      torn_down: ["gc-saved"],
      kept: [{ name: "gc-unsaved", reason: "unsaved_changes" }],
      // No prepared environment was made here (no setup), so none is old enough to prune.
      environments_pruned: [],
      // Nor was any sandbox destroyed long enough ago for its notification ledger to go.
      notify_ledgers_pruned: [],
      dry_run: true,
    });
    expect((await alpine(["status", "gc-saved", "--json"])).json().state).toBe("completed");
    const real = await alpine(["gc", "--json"]);
    expect(real.json()).toMatchObject({
      torn_down: ["gc-saved"],
      kept: [{ name: "gc-unsaved", reason: "unsaved_changes" }],
    });
    expect((await alpine(["status", "gc-saved", "--json"])).json().state).toBe("destroyed");
    const again = await alpine(["gc", "--json"]);
    expect(again.json().torn_down).toEqual([]);
    expect(existsSync(join(e.alpineHome, "state.db"))).toBe(true);
  });
});
