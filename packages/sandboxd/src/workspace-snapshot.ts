import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import type { CheckpointManifestData } from "@alpine/core/sandboxd-api";
import type { Hashed } from "./files.ts";
import { firstLine, identityEnv, type ResolvedRepo } from "./git.ts";
import { LONG_MS, type Workspace, type WorkspaceMeta } from "./workspace.ts";

/** What a checkpoint captured of the git workspace. */
export interface Snapshot {
  branch: string;
  head: string;
  /** head + the whole working tree, on refs/alpine/checkpoints/<id> in the bundle only. */
  commit: string;
  tree: string;
  bundle: Hashed;
}

/**
 * Checkpoint of the git side, in the private dir `privateDir` (nothing is
 * written to the workspace): a commit of the whole working tree on top of
 * HEAD, and a self-contained bundle (full history) of the branch and
 * refs/alpine/checkpoints/<id>. The private dir, and with it that ref, is
 * deleted by the caller once the bundle exists.
 */
export async function snapshotWorkspace(
  ws: Workspace,
  opts: { id: string; createdAt: string; privateDir: string; bundleFile: string },
): Promise<Snapshot> {
  const { git } = ws;
  const meta = ws.requireMeta();
  const { ref, head } = await ws.currentRef();
  if (!head) throw new AlpineError("checkpoint_failed", "the workspace's HEAD is not a commit", {});
  let branch = ref ? ref.slice("refs/heads/".length) : meta.branch;
  // A branch name git would refuse in the bundle (the agent may name branches oddly): the recorded one.
  branch = await git.checkBranch(branch).catch(() => meta.branch);
  const env = ws.privateRepo(opts.privateDir, "private");
  await git.ok(["update-ref", `refs/heads/${branch}`, head], env);
  const tree = await ws.stageAll(env, head);
  const when = `@${Math.floor(Date.parse(opts.createdAt) / 1000) || Math.floor(Date.now() / 1000)} +0000`;
  const commit = (
    await git.ok(["commit-tree", tree, "-p", head, "-F", "-"], {
      ...env,
      input: `alpine checkpoint ${opts.id}\n`,
      env: { ...env.env, ...identityEnv({ name: "alpine", email: "alpine@localhost" }, when) },
    })
  ).trim();
  await git.ok(["update-ref", `refs/alpine/checkpoints/${opts.id}`, commit], env);
  const res = await git.runToFile(
    ["bundle", "create", "--quiet", "-", `refs/heads/${branch}`, `refs/alpine/checkpoints/${opts.id}`],
    opts.bundleFile,
    { ...env, timeoutMs: LONG_MS },
  );
  if (res.code !== 0 || res.sha256 === undefined || res.bytes === undefined) {
    throw new AlpineError("checkpoint_failed", `git bundle failed: ${firstLine(res.stderr)}`, {
      stderr: res.stderr.slice(0, 2000),
    });
  }
  return { branch, head, commit, tree, bundle: { sha256: res.sha256, bytes: res.bytes } };
}

/**
 * Rebuilds the workspace from a checkpoint bundle into the empty workspace
 * dir: `branch` at manifest.head_commit (its commits back), the working tree
 * equal to manifest.checkpoint_commit's tree (added/changed files written,
 * files it lacks absent, modes and symlinks as git recorded them), and the
 * index = HEAD (untracked files untracked, changes unstaged). The agent does
 * not run yet, so git works on the workspace's own (fresh) git dir here, as
 * for a clone.
 */
export async function restoreWorkspace(
  ws: Workspace,
  opts: { bundle: string; manifest: CheckpointManifestData; branch: string; repo: ResolvedRepo },
): Promise<WorkspaceMeta> {
  const { git } = ws;
  const { manifest, branch } = opts;
  mkdirSync(ws.dir, { recursive: true });
  ws.forget();
  ws.clearUnfinished();
  const damaged = (why: string, extra: Record<string, unknown> = {}) =>
    new AlpineError("checkpoint_checksum_mismatch", `workspace.bundle of ${manifest.checkpoint_id} ${why}`, {
      artifact: "workspace.bundle",
      checkpoint_id: manifest.checkpoint_id,
      ...extra,
    });
  await git.ok(["init", "--quiet", "--", ws.dir], { cwd: dirname(ws.dir) });
  ws.markInProgress();
  const env = { env: { GIT_DIR: ws.gitDir, GIT_WORK_TREE: ws.dir }, cwd: ws.dir };
  const fetch = await git.run(
    [
      "fetch",
      "--quiet",
      "--no-tags",
      "--no-write-fetch-head",
      "--",
      opts.bundle,
      "+refs/*:refs/alpine/restore/*",
    ],
    { ...env, timeoutMs: LONG_MS },
  );
  if (fetch.code !== 0)
    throw damaged(`cannot be read: ${firstLine(fetch.stderr)}`, { stderr: fetch.stderr.slice(0, 2000) });
  const rev = async (expr: string) => {
    const r = await git.run(["rev-parse", "--verify", "--quiet", "--end-of-options", expr], env);
    return r.code === 0 ? r.stdout.trim() : null;
  };
  if ((await rev(`${manifest.head_commit}^{commit}`)) !== manifest.head_commit) {
    throw damaged(`lacks head_commit ${manifest.head_commit}`);
  }
  if ((await rev(`${manifest.checkpoint_commit}^{tree}`)) !== manifest.tree_hash) {
    throw damaged(`lacks checkpoint_commit ${manifest.checkpoint_commit} with tree ${manifest.tree_hash}`);
  }
  // The working tree = the checkpoint's tree (checkout into an empty dir: nothing else exists).
  await git.ok(["read-tree", manifest.checkpoint_commit], env);
  await git.ok(["checkout-index", "--all", "--force", "--quiet"], { ...env, timeoutMs: LONG_MS });
  // HEAD = branch at head_commit; the index = HEAD (with fresh stat data), so changes show as unstaged/untracked.
  await git.ok(["symbolic-ref", "HEAD", `refs/heads/${branch}`], env);
  await git.ok(["update-ref", `refs/heads/${branch}`, manifest.head_commit], env);
  await git.ok(["read-tree", manifest.head_commit], env);
  // Exit 1 only means some files differ from the index: they are the uncommitted work.
  await git.run(["update-index", "-q", "--refresh"], { ...env, timeoutMs: LONG_MS });
  const temp = await git.ok(["for-each-ref", "--format=%(refname)", "refs/alpine/restore/"], env);
  const deletes = temp
    .split("\n")
    .filter(Boolean)
    .map((r) => `delete ${r}\n`)
    .join("");
  if (deletes) await git.ok(["update-ref", "--stdin"], { ...env, input: deletes });
  await git.ok(["remote", "add", "origin", opts.repo.url], env);
  const meta: WorkspaceMeta = {
    repo: opts.repo.display,
    ref: null,
    branch,
    base_commit: manifest.base_commit,
    created_at: new Date().toISOString(),
    restored_from: manifest.checkpoint_id,
  };
  ws.recordMeta(meta);
  ws.log.info("workspace restored", {
    checkpoint_id: manifest.checkpoint_id,
    branch,
    head: manifest.head_commit,
    base_commit: manifest.base_commit,
  });
  return meta;
}
