import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, filesContaining, makeEnv, processesMatching, SECRETS, waitFor } from "./env.ts";

/**
 * The local provider's repo object cache, end to end: real git over
 * authenticated smart HTTP, real OpenCode under bubblewrap. A second launch of
 * a repo downloads (almost) nothing; concurrent launches of one repo are safe.
 */
let e: E2EEnv;
const names: string[] = [];

const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 300_000 });

/** Bytes the git server sent for a repo since `from` (an index into its request log). */
const served = (repo: string, from: number) =>
  e.git.requests
    .slice(from)
    .filter((r) => r.path.startsWith(`/${repo}.git/`))
    .reduce((sum, r) => sum + r.bytes, 0);

async function launch(name: string, repoUrl: string) {
  names.push(name);
  const r = await alpine("launch", name, "--repo", repoUrl, "--json");
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return r.json() as { id: string; state: string };
}

beforeAll(async () => {
  e = await makeEnv();
});

afterAll(async () => {
  await Promise.all(names.map((n) => alpine("teardown", n, "--force", "--json").catch(() => {})));
  await e.close();
});

describe("repo object cache (local provider)", () => {
  it("a second launch of a repo does not download it again", async () => {
    // ≈1.4 MB that does not compress: a second download would be plain to see.
    const url = await e.git.createRepo("big", {
      "README.md": "# big\n",
      "data.bin": randomBytes(1024 * 1024).toString("base64"),
    });
    const before = e.git.requests.length;
    const first = await launch("cache-one", url);
    expect(first.state).toBe("running");
    const firstBytes = served("big", before);
    expect(firstBytes).toBeGreaterThan(1_000_000);

    const mid = e.git.requests.length;
    const second = await launch("cache-two", url);
    expect(second.state).toBe("running");
    const secondBytes = served("big", mid);
    // Refs and an empty pack, not the repo.
    expect(secondBytes).toBeLessThan(firstBytes / 20);

    const caches = readdirSync(join(e.alpineHome, "cache", "repos")).filter((n) => n.endsWith(".git"));
    expect(caches).toHaveLength(1);
    const cacheObjects = join(e.alpineHome, "cache", "repos", caches[0]!, "objects");
    const ws = join(e.alpineHome, "sandboxes", second.id, "workspace");
    expect(readFileSync(join(ws, ".git", "objects", "info", "alternates"), "utf8").trim()).toBe(cacheObjects);
    expect(readFileSync(join(ws, "data.bin"), "utf8")).toHaveLength(1398104);

    // The agent's own git, in OpenCode's bubblewrap (where $ALPINE_HOME is hidden), reads the
    // borrowed objects: run git with the very mounts sandboxd gave OpenCode.
    const log = readFileSync(join(e.alpineHome, "sandboxes", second.id, "logs", "sandboxd.log"), "utf8");
    const started = log
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((l) => l.msg === "starting opencode");
    expect(started.cmd).toBe("bwrap");
    const mounts: string[] = started.args.slice(0, started.args.indexOf("--"));
    expect(mounts.join(" ")).toContain(`--ro-bind ${dirname(cacheObjects)} ${dirname(cacheObjects)}`);
    const inside = execFileSync("bwrap", [...mounts, "--", "git", "-C", ws, "show", "HEAD:README.md"], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, HOME: "/nonexistent", GIT_CONFIG_NOSYSTEM: "1" },
    });
    expect(inside).toBe("# big\n");

    // The workspace's diff and status work through the cache too.
    const status = (await alpine("status", "cache-two", "--json")).json();
    expect(status.workspace).toMatchObject({ dirty: false, changed_files: [], ahead: 0 });

    // The cache holds no credentials (the clone's token came from the host's helper, per request).
    expect(filesContaining(join(e.alpineHome, "cache"), [SECRETS.gitToken, "alice:"])).toEqual([]);
  });

  it("concurrent launches of one repo all succeed with one cache and one download", async () => {
    const url = await e.git.createRepo("shared", {
      "README.md": "# shared\n",
      "data.bin": randomBytes(256 * 1024).toString("base64"),
    });
    const before = e.git.requests.length;
    const pars = ["par-a", "par-b", "par-c"];
    const results = await Promise.all(pars.map((n) => launch(n, url)));
    for (const r of results) expect(r.state).toBe("running");
    const head = await e.git.readRef("shared", "main");
    for (const n of pars) expect((await alpine("status", n, "--json")).json().workspace.head).toBe(head);
    // One full download for the cache; the three clones fetched only what the cache lacked (nothing).
    expect(served("shared", before)).toBeLessThan(2 * 350_000);
    const repos = join(e.alpineHome, "cache", "repos");
    expect(readdirSync(repos).filter((n) => n.endsWith(".lock"))).toEqual([]);
  });

  it("teardown leaves no process behind and the cache stays for the next launch", async () => {
    for (const n of names.splice(0)) {
      const r = await alpine("teardown", n, "--force", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    await waitFor("no sandbox processes", async () => processesMatching(e.alpineHome).length === 0, {
      timeoutMs: 30_000,
    });
    expect(readdirSync(join(e.alpineHome, "cache", "repos")).filter((n) => n.endsWith(".git"))).toHaveLength(
      2,
    );
  });
});
