import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { stubOpencodeConfig } from "../../../test/e2e/fixtures/stub-model.ts";
import {
  git,
  isAlive,
  makeBareRepo,
  readLog,
  sandboxdsOfThisFile,
  stubModelOfThisSuite,
  tempDir,
  waitFor,
  waitTask,
} from "./helpers.ts";

/*
 * The launch-path speed-ups sandboxd owns, on real git and a real OpenCode:
 * the shared per-repo object cache (second clone borrows, concurrent clones
 * of one repo are safe) and warm sandboxds (OpenCode started before there is
 * a workspace, adopted later, and its agent then works on the cloned repo).
 */

const start = sandboxdsOfThisFile({ isolation: "none" });

function alternates(workspace: string): string {
  const file = join(workspace, ".git", "objects", "info", "alternates");
  return existsSync(file) ? readFileSync(file, "utf8").trim() : "";
}

describe("repo object cache", () => {
  const cacheDir = tempDir("alpine-repo-cache-");
  let repo: string;

  beforeAll(() => {
    // Big enough that a second download would show.
    repo = makeBareRepo({
      "README.md": "# cached\n",
      "blob.bin": randomBytes(512 * 1024).toString("base64"),
    });
  });

  it("the first clone fills the cache; the second borrows its objects instead of copying them", async () => {
    const first = await start({ repo_cache_dir: cacheDir });
    await first.client.init({ repo, branch: "alpine/one" });
    const caches = readdirSync(cacheDir).filter((n) => n.endsWith(".git"));
    expect(caches).toHaveLength(1);
    const cache = join(cacheDir, caches[0]!);
    expect(readFileSync(join(cache, "alpine-repo"), "utf8").trim()).toBe(repo);
    // No lock is left behind.
    expect(readdirSync(cacheDir).filter((n) => n.endsWith(".lock"))).toEqual([]);

    const second = await start({ repo_cache_dir: cacheDir });
    const status = await second.client.init({ repo, branch: "alpine/two" });
    expect(status.phase).toBe("ready");
    expect(alternates(second.dirs.workspace)).toBe(join(cache, "objects"));
    // It brought the cache up to date (the remote may have moved) and cloned from it.
    expect(readLog(second.dirs.log)).toContain("repo cache fetched");
    expect(git(second.dirs.workspace, "remote", "get-url", "origin").trim()).toBe(repo);
    // The workspace has (almost) no objects of its own, yet git sees the whole history.
    const own = readdirSync(join(second.dirs.workspace, ".git", "objects", "pack"));
    expect(own.filter((n) => n.endsWith(".pack"))).toEqual([]);
    expect(readFileSync(join(second.dirs.workspace, "README.md"), "utf8")).toBe("# cached\n");
    expect(git(second.dirs.workspace, "log", "--format=%s").trim()).toBe("initial");
    expect(git(second.dirs.workspace, "fsck", "--connectivity-only").trim()).toBe("");
  });

  it("concurrent clones of one repo all succeed and share one cache", async () => {
    const fresh = tempDir("alpine-repo-cache-");
    const sbxs = await Promise.all([1, 2, 3].map(() => start({ repo_cache_dir: fresh })));
    const results = await Promise.all(sbxs.map((s, i) => s.client.init({ repo, branch: `alpine/c${i}` })));
    for (const r of results) expect(r.phase).toBe("ready");
    expect(readdirSync(fresh).filter((n) => n.endsWith(".git"))).toHaveLength(1);
    expect(readdirSync(fresh).filter((n) => n.endsWith(".lock"))).toEqual([]);
    // They took turns on the lock; each workspace borrows from the one cache.
    const head = git(repo, "rev-parse", "main").trim();
    for (const s of sbxs) {
      expect(git(s.dirs.workspace, "rev-parse", "HEAD").trim()).toBe(head);
      expect(alternates(s.dirs.workspace)).toMatch(/\.git\/objects$/);
    }
  });

  it("a new commit on the remote reaches the next launch (the cache is refreshed first)", async () => {
    const dir = tempDir("alpine-repo-cache-");
    const one = await start({ repo_cache_dir: dir });
    await one.client.init({ repo, branch: "alpine/before" });
    // Someone pushes right after.
    const work = tempDir("alpine-push-");
    git(work, "clone", "-q", repo, "w");
    writeFileSync(join(work, "w", "NEW.md"), "new\n");
    git(join(work, "w"), "add", "NEW.md");
    git(join(work, "w"), "commit", "-qm", "new");
    git(join(work, "w"), "push", "-q", "origin", "HEAD:main");
    const two = await start({ repo_cache_dir: dir });
    const st = await two.client.init({ repo, branch: "alpine/after" });
    expect(st.workspace?.base_commit).toBe(git(repo, "rev-parse", "main").trim());
    expect(readFileSync(join(two.dirs.workspace, "NEW.md"), "utf8")).toBe("new\n");
  });

  it("a cache that is not a repository does not stop a clone", async () => {
    const broken = tempDir("alpine-repo-cache-");
    const probe = await start({ repo_cache_dir: broken });
    await probe.client.init({ repo, branch: "alpine/p" });
    const cache = join(broken, readdirSync(broken).find((n) => n.endsWith(".git"))!);
    // Damage it: its objects are gone.
    writeFileSync(join(cache, "objects", "info", "alternates"), "/nonexistent/objects\n");
    for (const pack of readdirSync(join(cache, "objects", "pack")))
      writeFileSync(join(cache, "objects", "pack", pack), "junk");
    const next = await start({ repo_cache_dir: broken });
    const status = await next.client.init({ repo, branch: "alpine/q" });
    expect(status.phase).toBe("ready");
    expect(git(next.dirs.workspace, "fsck", "--connectivity-only").trim()).toBe("");
  });

  it("a stale lock of a dead process is broken", async () => {
    const dir = tempDir("alpine-repo-cache-");
    const probe = await start({ repo_cache_dir: dir });
    await probe.client.init({ repo, branch: "alpine/r" });
    const cache = readdirSync(dir).find((n) => n.endsWith(".git"))!;
    // A lock left by a launch that was killed (its pid no longer exists), and a cache due for a fetch.
    writeFileSync(
      join(dir, `${cache}.lock`),
      JSON.stringify({
        pid: 2 ** 22 + 17,
        host: (await import("node:os")).hostname(),
        at: Date.now(),
        nonce: "x",
      }),
    );
    writeFileSync(join(dir, cache, "alpine-fetched"), "");
    const { utimesSync } = await import("node:fs");
    utimesSync(join(dir, cache, "alpine-fetched"), new Date(0), new Date(0));
    const next = await start({ repo_cache_dir: dir });
    expect((await next.client.init({ repo, branch: "alpine/s" })).phase).toBe("ready");
    expect(readLog(next.dirs.log)).toContain("broke a stale repo cache lock");
    expect(existsSync(join(dir, `${cache}.lock`))).toBe(false);
  });
});

describe("warm sandboxd", () => {
  const stubModel = stubModelOfThisSuite();

  it("starts OpenCode before any workspace; once adopted and initialised its agent edits the cloned repo", async () => {
    const { model, config } = stubOpencodeConfig(stubModel.stub.baseURL);
    const sbx = await start({
      sandbox_id: "warm-0123456789abcdef",
      name: "warm-0123456789abcdef",
      // No credentials: a pool runtime holds none until a launch adopts it.
      opencode: { model, config },
      warm: { idle_exit_ms: 10 * 60_000 },
      repo_cache_dir: tempDir("alpine-repo-cache-"),
    });
    const booted = await waitFor(async () => {
      const s = await sbx.client.status();
      return s.opencode.ready ? s : undefined;
    }, 60_000);
    expect(booted.phase).toBe("booting");
    expect(readdirSync(sbx.dirs.workspace)).toEqual([]);

    // Not before it is adopted.
    await expect(sbx.client.init({ repo: makeBareRepo(), branch: "alpine/x" })).rejects.toMatchObject({
      reason: "usage_invalid",
    });

    const adopted = await sbx.client.adopt({
      sandbox_id: "sbx_adopted0000000000",
      name: "adopted",
      auth: { stub: { type: "api", key: stubModel.apiKey } },
    });
    expect(adopted).toMatchObject({ sandbox_id: "sbx_adopted0000000000", name: "adopted" });
    await expect(
      sbx.client.adopt({ sandbox_id: "sbx_other", name: "other", auth: {} }),
    ).rejects.toMatchObject({ reason: "sandbox_identity_conflict" });
    // The key stays with sandboxd's broker: OpenCode's auth.json holds the sandbox's token, the log neither.
    const authFile = join(sbx.dirs.home, ".local", "share", "opencode", "auth.json");
    const entry = JSON.parse(readFileSync(authFile, "utf8")).stub;
    expect(entry.type).toBe("api");
    expect(entry.key).not.toBe(stubModel.apiKey);
    expect(readFileSync(authFile, "utf8")).not.toContain(stubModel.apiKey);
    expect(readLog(sbx.dirs.log)).not.toContain(stubModel.apiKey);

    const repo = makeBareRepo({ "README.md": "# warm\n" });
    const pidBefore = booted.opencode.pid;
    const ready = await sbx.client.init({ repo });
    expect(ready.phase).toBe("ready");
    expect(ready.workspace?.branch).toBe("alpine/adopted");
    // The same OpenCode, not a second one.
    expect(ready.opencode.pid).toBe(pidBefore);
    expect(ready.opencode.restarts).toBe(0);
    // Without bubblewrap the agent can read the cache: objects are borrowed, not copied.
    expect(alternates(sbx.dirs.workspace)).not.toBe("");

    await sbx.client.task({ prompt: "WRITE NOTES.md written by a warm agent" });
    const done = await waitTask(sbx.client, 90_000);
    expect(done.task?.state).toBe("completed");
    expect(readFileSync(join(sbx.dirs.workspace, "NOTES.md"), "utf8")).toContain("written by a warm agent");
    expect(done.workspace?.changed_files).toEqual([{ path: "NOTES.md", status: "added" }]);
    // OpenCode filed the session under the cloned repo (its root commit) and the workspace path.
    const root = git(sbx.dirs.workspace, "rev-list", "--max-parents=0", "HEAD").trim();
    expect(readFileSync(join(sbx.dirs.workspace, ".git", "opencode"), "utf8").trim()).toBe(root);
    expect(stubModel.stub.requests.some((r) => r.authorization === `Bearer ${stubModel.apiKey}`)).toBe(true);
  });

  it("a warm sandboxd nobody adopts stops by itself, OpenCode with it", async () => {
    const sbx = await start({ warm: { idle_exit_ms: 4000 } });
    const s = await waitFor(async () => {
      const st = await sbx.client.status();
      return st.opencode.pid ? st : undefined;
    }, 60_000);
    const code = await sbx.exited;
    expect(code).toBe(0);
    await waitFor(async () => !isAlive(s.opencode.pid!), 10_000);
    expect(readLog(sbx.dirs.log)).toContain("not adopted in time");
  });

  it("adopt is refused by a sandboxd that was not started warm", async () => {
    const sbx = await start();
    await expect(sbx.client.adopt({ sandbox_id: "sbx_x", name: "x", auth: {} })).rejects.toMatchObject({
      reason: "usage_invalid",
    });
  });
});

describe("prestarted sandboxd (config.prestart)", () => {
  const hasBwrap = spawnSync("bwrap", ["--version"]).status === 0;

  /** The bubblewrap arguments OpenCode was last started with (from sandboxd's log). */
  function opencodeArgs(log: string): string[] {
    const starts = readLog(log)
      .split("\n")
      .filter((l) => l.includes('"starting opencode"'))
      .map((l) => JSON.parse(l) as { args: string[] });
    return starts.at(-1)?.args ?? [];
  }
  const roBinds = (args: string[]) =>
    args.flatMap((a, i) => (a === "--ro-bind" && args[i + 1] === args[i + 2] ? [args[i + 1]!] : []));

  it.skipIf(!hasBwrap)(
    "starts OpenCode at boot with the repo's cache mounted; a kept workspace gets its cache mounted again",
    async () => {
      const cacheDir = tempDir("alpine-repo-cache-");
      const repo = makeBareRepo({ "README.md": "# prestarted\n" });
      const first = await start({ isolation: "bubblewrap", repo_cache_dir: cacheDir, prestart: { repo } });
      // OpenCode is starting before anyone asked for an init (once sandboxd's egress proxy and
      // model broker, which its config points at, are up: so after sandboxd listens).
      await waitFor(async () => readLog(first.dirs.log).includes('"starting opencode"'), 30_000);
      const status = await first.client.init({ repo, branch: "alpine/pre" });
      expect(status.phase).toBe("ready");
      expect(status.agent.state).toBe("idle");
      const borrowed = alternates(first.dirs.workspace);
      expect(borrowed.startsWith(cacheDir)).toBe(true);
      const cache = borrowed.replace(/\/objects$/, "");
      expect(roBinds(opencodeArgs(first.dirs.log))).toContain(cache);
      // One OpenCode: init joined the prestarted one.
      expect(readLog(first.dirs.log).split('"starting opencode"').length - 1).toBe(1);

      // sandboxd restarts on the kept workspace: the agent must still reach the borrowed objects.
      await first.client.shutdown();
      await first.exited;
      const second = await start({ isolation: "bubblewrap", repo_cache_dir: cacheDir }, first.dirs);
      const again = await second.client.init({ repo, branch: "alpine/pre" });
      expect(again.phase).toBe("ready");
      expect(readLog(second.dirs.log)).toContain("reusing the existing workspace");
      expect(roBinds(opencodeArgs(second.dirs.log))).toContain(cache);
    },
    120_000,
  );

  it("a prestart for a repo it cannot resolve leaves the error to init", async () => {
    const sbx = await start({ prestart: { repo: "ext::sh -c evil" } });
    expect(readLog(sbx.dirs.log)).toContain("not prestarting opencode");
    await expect(sbx.client.init({ repo: "ext::sh -c evil" })).rejects.toMatchObject({
      reason: "repo_resolution_failed",
    });
  });
});
