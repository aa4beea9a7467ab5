import { execFileSync } from "node:child_process";
import { statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GitRunner } from "../src/git.ts";
import { Logger } from "../src/log.ts";
import { Workspace } from "../src/workspace.ts";
import { tempDir } from "./helpers.ts";

const gitIn = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@x", ...args], {
    cwd,
    encoding: "utf8",
  }).trim();

/**
 * The checkpoint's private index is kept between snapshots (its stat data spares re-hashing an
 * unchanged work tree). Whatever changed since must still be read: content with the same size
 * and mtime (only ctime differs), a file of HEAD deleted, an untracked one added, HEAD moved.
 */
describe("the snapshot index kept between checkpoints", () => {
  it("stages exactly the work tree every time, whatever the kept stat data says", async () => {
    const root = tempDir("alpine-snapindex-");
    const dir = join(root, "workspace");
    execFileSync("git", ["init", "-q", "-b", "main", dir]);
    writeFileSync(join(dir, "a.txt"), "aaaa\n");
    writeFileSync(join(dir, "b.txt"), "bbbb\n");
    gitIn(dir, "add", "-A");
    gitIn(dir, "commit", "-qm", "one");
    const log = new Logger(join(root, "log"));
    const ws = new Workspace(dir, join(root, "shadow"), new GitRunner(log), log);
    const env = ws.privateRepo(join(root, "snapshot-git"), "private");
    /** The tree git itself makes of the work tree, in an index of its own. */
    const truth = () => {
      const e = { ...process.env, GIT_INDEX_FILE: join(root, "truth-index") };
      execFileSync("git", ["read-tree", "HEAD"], { cwd: dir, env: e });
      execFileSync("git", ["add", "-A"], { cwd: dir, env: e });
      return execFileSync("git", ["write-tree"], { cwd: dir, env: e, encoding: "utf8" }).trim();
    };
    const head = () => gitIn(dir, "rev-parse", "HEAD");

    const first = await ws.stageAll(env, head());
    expect(first).toBe(truth());

    // Same size, same mtime: only ctime (and the content) tell.
    const before = statSync(join(dir, "a.txt"));
    writeFileSync(join(dir, "a.txt"), "AAAA\n");
    utimesSync(join(dir, "a.txt"), before.atime, before.mtime);
    const second = await ws.stageAll(env, head());
    expect(second).not.toBe(first);
    expect(second).toBe(truth());

    // A new commit (HEAD moves), a deleted file of HEAD, an untracked file.
    writeFileSync(join(dir, "b.txt"), "bbbb2\n");
    gitIn(dir, "commit", "-qam", "two");
    execFileSync("rm", [join(dir, "b.txt")]);
    writeFileSync(join(dir, "c.txt"), "new\n");
    const third = await ws.stageAll(env, head());
    expect(third).toBe(truth());
    expect(gitIn(dir, "ls-tree", "--name-only", third).split("\n")).toEqual(["a.txt", "c.txt"]);

    // A kept index git cannot read is replaced, not fatal.
    writeFileSync(join(root, "snapshot-git", "index"), "not an index");
    expect(await ws.stageAll(env, head())).toBe(truth());
  });
});
