import { closeSync, lstatSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import type { ExportResponse } from "@alpine/core/sandboxd-api";
import type { CredentialTarget, GitCredentials } from "./credentials.ts";
import { firstLine, identityEnv, resolveRepo, safeShow } from "./git.ts";
import { numstatTotals, parseNumstat, pushFailure } from "./git-output.ts";
import { sleep } from "./proc.ts";
import { type GitEnv, LONG_MS, type Workspace } from "./workspace.ts";

/** The work committed by an export (in the workspace's own object store and branch). */
export interface CommittedWork {
  commit: string;
  tree: string;
  head: string;
  /** false when the working tree already equalled HEAD (the agent committed everything). */
  created: boolean;
  /** Env of the private git dir used (objects = the workspace's), for push and numstat. */
  env: GitEnv;
}

/**
 * Commits the whole working tree (tracked + untracked, not ignored) on top
 * of HEAD with the given message and author (= committer), built in the
 * private dir with the workspace's object store, then moves the workspace's
 * branch (compare-and-swap against the HEAD it started from) and replaces
 * its index with one matching the commit. When the tree already equals
 * HEAD's, HEAD is the result; when HEAD also is the base, nothing_to_export.
 */
export async function commitAll(
  ws: Workspace,
  opts: { privateDir: string; message: string; author: { name: string; email: string } },
): Promise<CommittedWork> {
  const { git } = ws;
  const meta = ws.requireMeta();
  const { ref, head } = await ws.currentRef();
  if (!head) throw new AlpineError("internal_error", "the workspace's HEAD is not a commit", {});
  const env = ws.privateRepo(opts.privateDir, "workspace");
  const tree = await ws.stageAll(env, head);
  const headTree = (await git.ok(["rev-parse", "--verify", `${head}^{tree}`], env)).trim();
  if (tree === headTree) {
    if (head === meta.base_commit) {
      throw new AlpineError("nothing_to_export", "the sandbox has no changes and no commits to export", {
        base_commit: meta.base_commit,
      });
    }
    return { commit: head, tree, head, created: false, env };
  }
  const commit = (
    await git.ok(["commit-tree", tree, "-p", head, "-F", "-"], {
      ...env,
      input: opts.message.endsWith("\n") ? opts.message : `${opts.message}\n`,
      env: { ...env.env, ...identityEnv(opts.author) },
    })
  ).trim();
  await advance(ws, ref, commit, head);
  await replaceIndex(ws, join(opts.privateDir, "index"));
  ws.log.info("work committed", { commit, head, ref: ref ?? "HEAD (detached)" });
  return { commit, tree, head, created: true, env };
}

/** Moves ref (or a detached HEAD) from `old` to `next`; fails if someone moved it meanwhile. */
async function advance(ws: Workspace, ref: string | null, next: string, old: string): Promise<void> {
  // The ref's parent dirs must be real dirs: git would follow a symlink the agent put there.
  const parts = (ref ?? "HEAD").split("/");
  let p = ws.gitDir;
  for (const part of parts.slice(0, -1)) {
    p = join(p, part);
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) {
      throw new AlpineError("internal_error", `the workspace's ${safeShow(p)} is not a directory`, {});
    }
  }
  const args = ["-c", "core.logAllRefUpdates=false", "update-ref", "-m", "alpine export"];
  if (!ref) args.push("--no-deref");
  args.push(ref ?? "HEAD", next, old);
  const res = await ws.git.run(args, ws.repoOpts());
  if (res.code !== 0) {
    throw new AlpineError(
      "operation_in_progress",
      `the sandbox branch moved while exporting (the agent committed?); try again: ${firstLine(res.stderr)}`,
      { stderr: res.stderr.slice(0, 2000) },
    );
  }
}

/** Installs `index` as the workspace's index with git's lock protocol (skipped, with a warning, while locked). */
async function replaceIndex(ws: Workspace, index: string): Promise<void> {
  const lock = join(ws.gitDir, "index.lock");
  for (let attempt = 0; attempt < 10; attempt++) {
    let fd: number;
    try {
      fd = openSync(lock, "wx", 0o644);
    } catch {
      // Someone (the agent's git) holds index.lock: wait and try again, then give up with a warning below.
      await sleep(100);
      continue;
    }
    try {
      writeSync(fd, readFileSync(index));
    } finally {
      closeSync(fd);
    }
    renameSync(lock, join(ws.gitDir, "index"));
    return;
  }
  ws.log.warn("the workspace's index stayed locked; it still describes the previous HEAD", {});
}

/** `git diff --numstat base commit`: files (binary ones included) and line counts. */
export async function exportCounts(
  ws: Workspace,
  env: GitEnv,
  base: string,
  commit: string,
): Promise<Pick<ExportResponse, "files_changed" | "insertions" | "deletions">> {
  const out = await ws.git.ok(
    ["diff", "--numstat", "-z", "-M", "--no-ext-diff", "--no-textconv", base, commit, "--"],
    env,
  );
  const { files, insertions, deletions } = numstatTotals(parseNumstat(out));
  return { files_changed: files, insertions, deletions };
}

/**
 * Pushes `commit` to refs/heads/<branch> of the sandbox's repo (the URL it
 * was created from, not whatever the workspace's config now says), from the
 * private git dir, with credentials only over the command's credential pipe.
 */
export async function pushWork(
  ws: Workspace,
  opts: { env: GitEnv; commit: string; branch: string; credentials: GitCredentials | undefined },
): Promise<{ remote: string }> {
  const meta = ws.requireMeta();
  const repo = resolveRepo(meta.repo);
  const credentials: { credentials: GitCredentials; target: CredentialTarget } | undefined =
    opts.credentials && repo.target ? { credentials: opts.credentials, target: repo.target } : undefined;
  const res = await ws.git.run(
    [
      "-c",
      "http.lowSpeedLimit=1000",
      "-c",
      "http.lowSpeedTime=60",
      "push",
      "--porcelain",
      "--no-verify",
      "--",
      repo.url,
      `${opts.commit}:refs/heads/${opts.branch}`,
    ],
    { ...opts.env, timeoutMs: LONG_MS, credentials },
  );
  if (res.code !== 0) {
    const text = `${res.stdout}\n${res.stderr}`.trim();
    const { rejected, why } = pushFailure(res.stdout, res.stderr);
    throw new AlpineError(
      rejected ? "push_rejected" : "repo_unreachable",
      `pushing ${opts.branch} to ${repo.display} failed: ${why || "git push failed"}`,
      { branch: opts.branch, remote: repo.display, git: text.slice(0, 2000) },
    );
  }
  ws.log.info("pushed", { branch: opts.branch, commit: opts.commit, remote: repo.display });
  return { remote: repo.display };
}
