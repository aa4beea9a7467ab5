import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import type { GitCredentials } from "./credentials.ts";
import { checkRef, cloneFailureReason, firstLine, type ResolvedRepo } from "./git.ts";
import type { SpareCheckouts } from "./spare-checkout.ts";
import { LONG_MS, type Workspace, type WorkspaceMeta } from "./workspace.ts";

/** A bare cache of the repo, up to date with the remote (RepoCache.refresh), and its spares. */
export interface CloneCache {
  dir: string;
  /** Copy the cache's objects instead of borrowing them (the agent cannot see the cache). */
  dissociate: boolean;
  spares?: SpareCheckouts;
}

/**
 * Clones repo into the (empty) workspace and checks out `branch` at `ref`
 * (default: the remote's default branch). Resolves when the checkout exists.
 * Runs before the agent does, so git works on the workspace's own git dir.
 */
export async function cloneWorkspace(
  ws: Workspace,
  repo: ResolvedRepo,
  ref: string | undefined,
  branch: string,
  credentials: GitCredentials | undefined,
  cache?: CloneCache,
): Promise<WorkspaceMeta> {
  const { git, log } = ws;
  if (ref !== undefined) checkRef(ref);
  mkdirSync(ws.dir, { recursive: true });
  ws.clearUnfinished();

  const creds = credentials ?? repo.urlCredentials;
  const fromRemote = () => {
    // Give up on a transfer slower than 1 KB/s for a minute rather than hang.
    const args = ["-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60"];
    args.push("clone", "--no-checkout", "--origin", "origin");
    if (repo.local) args.push("--no-hardlinks");
    args.push("--", repo.url, ws.dir);
    return git.run(args, {
      cwd: dirname(ws.dir),
      timeoutMs: LONG_MS,
      credentials: creds && repo.target ? { credentials: creds, target: repo.target } : undefined,
    });
  };
  let res: Awaited<ReturnType<typeof fromRemote>> | null = null;
  const fromSpare = cache?.spares?.claim(cache.dir, ws.dir) ?? false;
  // A move that failed half-way left a `.git` marked in progress: ours to clear.
  if (cache?.spares && !fromSpare) ws.clearUnfinished();
  if (fromSpare && cache) {
    // A spare checkout of this repo (spare-checkout.ts): its work tree is already written.
    res = await catchUpWithCache(ws, cache.dir, repo);
    if (res.code === 0) log.info("workspace made from the spare checkout", { cache: cache.dir });
    else {
      log.warn("spare checkout could not catch up with the repo cache; cloning", {
        error: firstLine(res.stderr),
      });
      ws.clearUnfinished();
      res = null;
    }
  }
  if (cache && !res) {
    // No network: the cache was just brought up to date. Its objects are borrowed
    // (objects/info/alternates; the agent reads them through a read-only mount), or copied
    // when the agent cannot see the cache; never hard-linked (the agent could write them).
    res = await git.run(
      [
        "clone",
        "--no-checkout",
        "--origin",
        "origin",
        cache.dissociate ? "--no-hardlinks" : "--shared",
        "--",
        cache.dir,
        ws.dir,
      ],
      { cwd: dirname(ws.dir), timeoutMs: LONG_MS },
    );
    if (res.code === 0) {
      const url = await git.run(["config", "remote.origin.url", repo.url], {
        env: { GIT_DIR: ws.gitDir },
      });
      if (url.code !== 0) res = url;
    }
    if (res.code !== 0) {
      // A damaged cache must not make the launch fail: clone as if there were none.
      log.warn("clone from the repo cache failed; cloning from the remote", {
        error: firstLine(res.stderr),
      });
      ws.clearUnfinished();
      res = null;
    }
  }
  res ??= await fromRemote();
  if (res.code !== 0) {
    ws.clearUnfinished();
    const reason = cloneFailureReason(res.stderr);
    throw new AlpineError(reason, `cannot clone ${repo.display}: ${firstLine(res.stderr)}`, {
      repo: repo.display,
      stderr: res.stderr.slice(0, 2000),
    });
  }

  ws.markInProgress();
  const env = { GIT_DIR: ws.gitDir, GIT_WORK_TREE: ws.dir };
  let refName: string | null = ref ?? null;
  let commit: string | undefined;
  if (ref === undefined) {
    const head = await git.run(["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"], { env });
    const name = head.stdout.trim();
    if (head.code !== 0 || !name) {
      throw new AlpineError("ref_not_found", `${repo.display} has no default branch (is it empty?)`, {
        repo: repo.display,
      });
    }
    refName = name.replace(/^refs\/remotes\/origin\//, "");
    commit = await resolveCommit(ws, name, env);
  } else {
    for (const candidate of [`refs/remotes/origin/${ref}`, `refs/tags/${ref}`, ref]) {
      commit = await resolveCommit(ws, candidate, env);
      if (commit) break;
    }
  }
  if (!commit) {
    throw new AlpineError("ref_not_found", `ref '${ref}' was not found in ${repo.display}`, {
      repo: repo.display,
      ref: ref ?? null,
    });
  }
  await git.ok(["checkout", "--quiet", "--no-track", "-B", branch, commit, "--"], {
    env,
    cwd: ws.dir,
    timeoutMs: 30 * 60_000,
    reason: "internal_error",
  });
  const meta: WorkspaceMeta = {
    repo: repo.display,
    ref: refName,
    branch,
    base_commit: commit,
    created_at: new Date().toISOString(),
  };
  ws.recordMeta(meta);
  log.info("workspace checked out", { repo: repo.display, ref: refName, branch, base_commit: commit });
  return meta;
}

/**
 * A workspace made from a spare checkout has the refs of the cache as it was
 * when the spare was made: fetch what the cache has now (objects are copied,
 * the workspace keeps no tie to the cache), point origin/HEAD and the local
 * default branch where a fresh clone would, and give origin the repo's URL.
 */
async function catchUpWithCache(ws: Workspace, cacheDir: string, repo: ResolvedRepo) {
  const { git } = ws;
  const env = { GIT_DIR: ws.gitDir };
  const fetched = await git.run(
    [
      "fetch",
      "--quiet",
      "--prune",
      "--no-write-fetch-head",
      "--",
      cacheDir,
      "+refs/heads/*:refs/remotes/origin/*",
      "+refs/tags/*:refs/tags/*",
    ],
    { env, timeoutMs: LONG_MS },
  );
  if (fetched.code !== 0) return fetched;
  const head = await git.run(["symbolic-ref", "--quiet", "HEAD"], { env: { GIT_DIR: cacheDir } });
  const name = head.stdout.trim().replace(/^refs\/heads\//, "");
  if (head.code === 0 && name) {
    for (const args of [
      ["symbolic-ref", "refs/remotes/origin/HEAD", `refs/remotes/origin/${name}`],
      ["update-ref", "--no-deref", `refs/heads/${name}`, `refs/remotes/origin/${name}`],
    ]) {
      const r = await git.run(args, { env });
      if (r.code !== 0) return r;
    }
  }
  return git.run(["config", "remote.origin.url", repo.url], { env });
}

async function resolveCommit(
  ws: Workspace,
  rev: string,
  env: Record<string, string>,
): Promise<string | undefined> {
  const res = await ws.git.run(["rev-parse", "--verify", "--quiet", "--end-of-options", `${rev}^{commit}`], {
    env,
  });
  const sha = res.stdout.trim();
  return res.code === 0 && /^[0-9a-f]{40,64}$/.test(sha) ? sha : undefined;
}
