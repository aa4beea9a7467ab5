import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { numstatTotals, parseNameStatus, parseNumstat, pushFailure } from "../src/git-output.ts";
import { takeSseEvents } from "../src/sse.ts";
import { tempDir } from "./helpers.ts";

/** A repo with one commit, then staged changes: a rename, a binary file, a path with a tab, a deletion. */
function stagedChanges(): string {
  const dir = tempDir("alpine-parse-");
  const git = (...args: string[]) =>
    execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", ...args], {
      cwd: dir,
      encoding: "utf8",
    });
  git("init", "--quiet");
  writeFileSync(join(dir, "old name.txt"), "a\nb\nc\nd\ne\nf\n");
  writeFileSync(join(dir, "tab\tname.txt"), "x\n");
  writeFileSync(join(dir, "gone.txt"), "1\n2\n");
  git("add", "-A");
  git("commit", "--quiet", "-m", "base");
  git("mv", "old name.txt", "new name.txt");
  writeFileSync(join(dir, "tab\tname.txt"), "x\ny\nz\n");
  writeFileSync(join(dir, "bin.dat"), Buffer.from([0, 1, 2, 0]));
  git("rm", "--quiet", "gone.txt");
  git("add", "-A");
  return dir;
}

function diff(dir: string, ...args: string[]): string {
  return execFileSync("git", ["diff", "--cached", "-M", "-z", ...args, "HEAD", "--"], {
    cwd: dir,
    encoding: "utf8",
  });
}

describe("git diff output of a real repo", () => {
  const dir = stagedChanges();

  it("name-status: renames keep the old path; odd names survive", () => {
    const files = parseNameStatus(diff(dir, "--name-status"));
    expect(files.sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: "bin.dat", status: "added" },
      { path: "gone.txt", status: "deleted" },
      { path: "new name.txt", status: "renamed", old_path: "old name.txt" },
      { path: "tab\tname.txt", status: "modified" },
    ]);
  });

  it("numstat: keyed by the new path, binaries 0/0, a tab in a path kept", () => {
    const counts = parseNumstat(diff(dir, "--numstat"));
    expect(Object.fromEntries(counts)).toEqual({
      "bin.dat": { insertions: 0, deletions: 0, binary: true },
      "gone.txt": { insertions: 0, deletions: 2, binary: false },
      "new name.txt": { insertions: 0, deletions: 0, binary: false },
      "tab\tname.txt": { insertions: 2, deletions: 0, binary: false },
    });
    expect(numstatTotals(counts)).toEqual({ files: 4, insertions: 2, deletions: 2 });
  });

  it("copies count as added files; empty output is no files", () => {
    expect(parseNameStatus(["C075", "a", "b", ""].join("\0"))).toEqual([{ path: "b", status: "added" }]);
    expect(parseNameStatus("")).toEqual([]);
    expect(parseNumstat("").size).toBe(0);
    expect(numstatTotals(new Map())).toEqual({ files: 0, insertions: 0, deletions: 0 });
  });
});

describe("git push --porcelain failures", () => {
  it("a '!' line is a rejection with the remote's reason", () => {
    const stdout = [
      "To /srv/repo.git",
      "!\t3f1c2d0:refs/heads/alpine/x\t[rejected] (non-fast-forward)",
      "Done",
    ].join("\n");
    expect(pushFailure(stdout, "error: failed to push some refs to '/srv/repo.git'\n")).toEqual({
      rejected: true,
      why: "[rejected] (non-fast-forward)",
    });
  });

  it("no '!' line is not a rejection: the reason is git's error line", () => {
    const stderr =
      "remote: Invalid username or password.\nfatal: Authentication failed for 'https://h/r.git/'\n";
    expect(pushFailure("", stderr)).toEqual({
      rejected: false,
      why: "fatal: Authentication failed for 'https://h/r.git/'",
    });
  });
});

describe("event stream parsing", () => {
  it("returns complete events' data and keeps the incomplete rest", () => {
    const { data, rest } = takeSseEvents(
      'data: {"type":"a"}\n\n: comment\nevent: x\ndata: {"type":\ndata: "b"}\n\ndata: {"ty',
    );
    expect(data).toEqual(['{"type":"a"}', '{"type":\n"b"}']);
    expect(rest).toBe('data: {"ty');
    expect(takeSseEvents(`${rest}pe":"c"}\n\n`)).toEqual({ data: ['{"type":"c"}'], rest: "" });
  });

  it("a block without data (a comment heartbeat) yields nothing", () => {
    expect(takeSseEvents(": ping\n\n")).toEqual({ data: [], rest: "" });
  });
});
