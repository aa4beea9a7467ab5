import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { stubOpencodeConfig } from "../../../test/e2e/fixtures/stub-model.ts";
import {
  git,
  makeBareRepo,
  readLog,
  sandboxdsOfThisFile,
  stubModelOfThisSuite,
  tempDir,
  waitFor,
  waitTask,
} from "./helpers.ts";

/*
 * Spare checkouts (sandboxd/src/spare-checkout.ts) on real git: after a launch
 * of a repo with many files, the next launch of that repo gets its work tree
 * by renaming a prepared one into its workspace, then catches up with the
 * cache. The result must be indistinguishable from a clone.
 */

const startSandboxd = sandboxdsOfThisFile({ isolation: "none" });
const start = (cacheDir: string) => startSandboxd({ repo_cache_dir: cacheDir, spare_min_files: 10 });

const spareOf = (cacheDir: string) => readdirSync(cacheDir).filter((n) => n.endsWith(".spare"));
const waitSpare = (cacheDir: string) => waitFor(async () => spareOf(cacheDir).length === 1, 30_000);

function files(n: number): Record<string, string> {
  const out: Record<string, string> = { "README.md": "# many\n" };
  for (let i = 0; i < n; i++) out[`src/d${i % 4}/f${i}.txt`] = `file ${i}\n`;
  return out;
}

function push(repo: string, edit: (work: string) => void): string {
  const work = join(tempDir("alpine-push-"), "w");
  git(join(work, ".."), "clone", "-q", repo, "w");
  edit(work);
  git(work, "add", "-A");
  git(work, "commit", "-qm", "moved on");
  git(work, "push", "-q", "origin", "HEAD:main");
  return git(repo, "rev-parse", "main").trim();
}

describe("spare checkouts", () => {
  let repo: string;
  beforeAll(() => {
    repo = makeBareRepo(files(40));
  });

  it("a launch prepares one; the next launch of the repo is made from it and equals a fresh clone", async () => {
    const cacheDir = tempDir("alpine-spare-cache-");
    const first = await start(cacheDir);
    await first.client.init({ repo, branch: "alpine/one" });
    await waitSpare(cacheDir);
    expect(readLog(first.dirs.log)).toContain("spare checkout prepared");
    // Nothing half-made or locked is left beside it.
    expect(readdirSync(cacheDir).filter((n) => /\.(lock|tmp-\d+|claimed-.*)$/.test(n))).toEqual([]);

    // The remote moves on after the spare was made: a changed, an added and a removed file.
    const head = push(repo, (w) => {
      writeFileSync(join(w, "README.md"), "# many, changed\n");
      writeFileSync(join(w, "NEW.md"), "new\n");
      git(w, "rm", "-q", "src/d0/f0.txt");
    });

    const second = await start(cacheDir);
    const inode = statSync(second.dirs.workspace).ino;
    const st = await second.client.init({ repo, branch: "alpine/two" });
    expect(st.phase).toBe("ready");
    const ws = second.dirs.workspace;
    expect(readLog(second.dirs.log)).toContain("workspace made from the spare checkout");
    // The workspace dir itself stayed (bubblewrap may have it mounted); its entries came from the spare.
    expect(statSync(ws).ino).toBe(inode);
    expect(st.workspace).toMatchObject({ branch: "alpine/two", base_commit: head, head, dirty: false });
    expect(git(ws, "symbolic-ref", "HEAD").trim()).toBe("refs/heads/alpine/two");
    expect(git(ws, "rev-parse", "HEAD").trim()).toBe(head);
    expect(git(ws, "status", "--porcelain", "--untracked-files=all").trim()).toBe("");
    expect(readFileSync(join(ws, "README.md"), "utf8")).toBe("# many, changed\n");
    expect(readFileSync(join(ws, "NEW.md"), "utf8")).toBe("new\n");
    expect(existsSync(join(ws, "src", "d0", "f0.txt"))).toBe(false);
    // Refs and remote as a clone leaves them, the URL the repo's (not the cache's).
    expect(git(ws, "remote", "get-url", "origin").trim()).toBe(repo);
    expect(git(ws, "rev-parse", "refs/remotes/origin/main").trim()).toBe(head);
    expect(git(ws, "symbolic-ref", "refs/remotes/origin/HEAD").trim()).toBe("refs/remotes/origin/main");
    expect(git(ws, "rev-parse", "refs/heads/main").trim()).toBe(head);
    // Self-contained: no alternates into the cache, every object present, no in-progress mark.
    expect(existsSync(join(ws, ".git", "objects", "info", "alternates"))).toBe(false);
    expect(git(ws, "fsck", "--connectivity-only").trim()).toBe("");
    expect(readdirSync(join(ws, ".git")).filter((n) => n.includes("in-progress"))).toEqual([]);
    // The spare was consumed, and the launch prepared the next one (at the new commit).
    await waitSpare(cacheDir);
    const spare = join(cacheDir, spareOf(cacheDir)[0]!);
    expect(git(spare, "rev-parse", "HEAD").trim()).toBe(head);
  });

  it("a repo with fewer files than the threshold gets none", async () => {
    const cacheDir = tempDir("alpine-spare-cache-");
    const small = makeBareRepo(files(3));
    const s = await start(cacheDir);
    await s.client.init({ repo: small, branch: "alpine/small" });
    // Give a background preparation the time it would need, then look.
    await new Promise((r) => setTimeout(r, 1000));
    expect(spareOf(cacheDir)).toEqual([]);
    expect(readLog(s.dirs.log)).not.toContain("spare checkout");
  });

  it("a damaged spare is not used: the launch clones from the cache instead", async () => {
    const cacheDir = tempDir("alpine-spare-cache-");
    const first = await start(cacheDir);
    await first.client.init({ repo, branch: "alpine/a" });
    await waitSpare(cacheDir);
    const spare = join(cacheDir, spareOf(cacheDir)[0]!);
    // Its git dir is no repository any more (HEAD and refs gone): the catch-up fetch fails on it.
    rmSync(join(spare, ".git", "HEAD"));
    rmSync(join(spare, ".git", "refs"), { recursive: true });
    const second = await start(cacheDir);
    const st = await second.client.init({ repo, branch: "alpine/b" });
    expect(st.phase).toBe("ready");
    expect(readLog(second.dirs.log)).toContain("cloning");
    expect(readLog(second.dirs.log)).not.toContain("workspace made from the spare checkout");
    const ws = second.dirs.workspace;
    expect(git(ws, "rev-parse", "HEAD").trim()).toBe(git(repo, "rev-parse", "main").trim());
    expect(git(ws, "status", "--porcelain").trim()).toBe("");
    expect(git(ws, "fsck", "--connectivity-only").trim()).toBe("");
  });

  describe("under bubblewrap, with OpenCode started before the work tree is moved in", () => {
    const hasBwrap = spawnSync("bwrap", ["--version"]).status === 0;
    const stubModel = stubModelOfThisSuite();

    it.skipIf(!hasBwrap)("the agent works in a workspace made from a spare", async () => {
      const cacheDir = tempDir("alpine-spare-cache-");
      const { model, config } = stubOpencodeConfig(stubModel.stub.baseURL);
      const opts = {
        isolation: "bubblewrap" as const,
        repo_cache_dir: cacheDir,
        spare_min_files: 10,
        opencode: { model, config, auth: { stub: { type: "api", key: stubModel.apiKey } } },
        // As the local provider launches: OpenCode starts at sandboxd's boot, before the checkout.
        prestart: { repo },
      };
      const first = await startSandboxd(opts);
      await first.client.init({ repo, branch: "alpine/bw1" });
      await waitSpare(cacheDir);
      const second = await startSandboxd(opts);
      const st = await second.client.init({ repo, branch: "alpine/bw2" });
      expect(st.phase).toBe("ready");
      expect(readLog(second.dirs.log)).toContain("workspace made from the spare checkout");
      await second.client.task({ prompt: "WRITE NOTES.md written beside the spare's files" });
      const done = await waitTask(second.client, 90_000);
      expect(done.task?.state).toBe("completed");
      expect(readFileSync(join(second.dirs.workspace, "NOTES.md"), "utf8")).toContain(
        "beside the spare's files",
      );
      // git in the moved work tree sees exactly the agent's change.
      expect(done.workspace?.changed_files).toEqual([{ path: "NOTES.md", status: "added" }]);
      // OpenCode opened the moved repo as a git project (it records its root commit in .git/opencode).
      const root = git(second.dirs.workspace, "rev-list", "--max-parents=0", "HEAD").trim();
      expect(readFileSync(join(second.dirs.workspace, ".git", "opencode"), "utf8").trim()).toBe(root);
    });
  });
});
