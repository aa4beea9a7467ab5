import { closeSync, mkdirSync, openSync, readSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import type { CheckpointManifestData } from "@alpine/core/sandboxd-api";
import { earlyBundleVerdict } from "@alpine/core/thin-bundle";
import type { CredentialTarget, GitCredentials } from "./credentials.ts";
import type { Hashed } from "./files.ts";
import { firstLine, identityEnv, type ResolvedRepo } from "./git.ts";
import { type GitEnv, LONG_MS, type Workspace, type WorkspaceMeta } from "./workspace.ts";

/** What a checkpoint captured of the git workspace. */
export interface Snapshot {
  branch: string;
  head: string;
  /** head + the whole working tree, on refs/alpine/checkpoints/<id> in the bundle only. */
  commit: string;
  tree: string;
  bundle: Hashed;
  /** What the (thin) bundle builds on; undefined when it is self-contained. */
  dependsOn?: NonNullable<CheckpointManifestData["depends_on"]>;
  /** ms since the snapshot began at which each step ended (logged; see docs/performance.md). */
  phases: Record<string, number>;
}

/** Records, per step name, the ms since it was made at which the step ended. */
function phaseClock(): ((step: string) => void) & { phases: Record<string, number> } {
  const started = Date.now();
  const phases: Record<string, number> = {};
  const took = (step: string) => {
    phases[`${step}_ms`] = Date.now() - started;
  };
  return Object.assign(took, { phases });
}

/** Most upstream tips a checkpoint builds on (a repo with more branches excludes only these). */
const MAX_UPSTREAM_TIPS = 1000;

/**
 * Where a checkpoint's objects are already safe, so its bundle need not hold them: the commits of
 * the earlier checkpoint `parent` (when this repo still has them), and the tips of the repo's
 * remote that this repo has (asked with `git ls-remote` now: a force-pushed or deleted branch is
 * no longer one). A remote that does not answer counts as holding nothing.
 */
/** The remote's branch tips (`git ls-remote --heads`), or null when it does not answer. */
async function remoteTips(ws: Workspace, env: GitEnv, from: UpstreamSource): Promise<string[] | null> {
  const { repo, credentials } = from;
  const creds = credentials ?? repo.urlCredentials;
  const res = await ws.git.run(["ls-remote", "--heads", "--", repo.url], {
    ...env,
    timeoutMs: 30_000,
    credentials: creds && repo.target ? { credentials: creds, target: repo.target } : undefined,
  });
  if (res.code !== 0) {
    ws.log.warn("the repo's remote did not answer; the checkpoint does not build on it", {
      error: firstLine(res.stderr),
    });
    return null;
  }
  return [...new Set(res.stdout.split("\n").map((l) => l.split("\t")[0]!))].filter((t) =>
    /^[0-9a-f]{40,64}$/.test(t),
  );
}

/** Which of `shas` this repo has as commits, in one git process (`missing` marks the others). */
async function commitsHere(ws: Workspace, env: GitEnv, shas: string[]): Promise<Set<string>> {
  const here = new Set<string>();
  if (shas.length === 0) return here;
  const r = await ws.git.run(["cat-file", "--batch-check=%(objectname) %(objecttype)"], {
    ...env,
    input: shas.map((t) => `${t}\n`).join(""),
  });
  for (const line of r.stdout.split("\n")) {
    const [sha, type] = line.split(" ");
    if (type === "commit" && shas.includes(sha!)) here.add(sha!);
  }
  return here;
}

async function safeBases(
  ws: Workspace,
  env: GitEnv,
  opts: {
    parent?: CheckpointManifestData;
    /** Whether this repo has both of the parent's commits (asked while the work tree was read). */
    parentHere: boolean;
    tips: Promise<string[] | null>;
    exclude: string[];
  },
): Promise<{ parent: string[]; upstream: string[] }> {
  const { git } = ws;
  const parent: string[] = [];
  if (opts.parent && opts.parentHere) {
    parent.push(...new Set([opts.parent.head_commit, opts.parent.checkpoint_commit]));
  }
  const tips = ((await opts.tips) ?? []).slice(0, MAX_UPSTREAM_TIPS);
  const here = await commitsHere(ws, env, tips);
  const upstream = tips.filter((t) => here.has(t));
  // The parent is only safe while the upstream commits its chain builds on still are: after a
  // force-push that dropped them, this checkpoint must not build on it (restore could not).
  const chainUpstream = opts.parent?.depends_on?.upstream ?? [];
  if (parent.length > 0 && chainUpstream.length > 0) {
    // Nothing listed: every commit the chain needs is reachable from a tip the remote has now.
    // Tips themselves (the usual case: the branch the chain began on has not moved) need no git.
    const missing =
      upstream.length === 0
        ? null
        : chainUpstream.every((c) => upstream.includes(c))
          ? { code: 0, stdout: "" }
          : // On the command line: git before 2.40 takes no options (--not) on rev-list's stdin.
            await git.run(["rev-list", "--max-count=1", ...chainUpstream, "--not", ...upstream], env);
    const reachable = missing !== null && missing.code === 0 && missing.stdout.trim() === "";
    if (!reachable) {
      ws.log.warn(
        "the upstream commits the last checkpoint builds on are gone; this checkpoint does not build on it",
        {
          parent: opts.parent!.checkpoint_id,
        },
      );
      parent.length = 0;
    }
  }
  const keep = (c: string) => !opts.exclude.includes(c);
  return { parent: parent.filter(keep), upstream: upstream.filter(keep) };
}

/** The repo a checkpoint may build on, and how to ask it. */
export interface UpstreamSource {
  repo: ResolvedRepo;
  credentials?: GitCredentials;
}

/** The prerequisite commits of a bundle file (header lines `-<sha> ...`). */
function bundlePrerequisites(file: string): string[] {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(256 * 1024);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString("latin1");
    const end = text.indexOf("\n\n");
    return (end < 0 ? text : text.slice(0, end))
      .split("\n")
      .filter((l) => l.startsWith("-"))
      .map((l) => l.slice(1).split(" ")[0]!);
  } finally {
    closeSync(fd);
  }
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
  opts: {
    id: string;
    createdAt: string;
    privateDir: string;
    bundleFile: string;
    parent?: CheckpointManifestData;
    upstream?: UpstreamSource;
  },
): Promise<Snapshot> {
  const { git } = ws;
  const meta = ws.requireMeta();
  const env = ws.privateRepo(opts.privateDir, "private");
  const took = phaseClock();
  // Asked first, while the working tree is read: the remote's answer is what takes longest here.
  const tips = opts.upstream
    ? remoteTips(ws, env, opts.upstream).finally(() => took("upstream"))
    : Promise.resolve(null);
  tips.catch(() => {});
  const { ref, head } = await ws.currentRef();
  if (!head) throw new AlpineError("checkpoint_failed", "the workspace's HEAD is not a commit", {});
  const named = ref ? ref.slice("refs/heads/".length) : meta.branch;
  const parentCommits = opts.parent ? [opts.parent.head_commit, opts.parent.checkpoint_commit] : [];
  // Independent reads, side by side: the branch name, the working tree, the parent's commits.
  const [branch, tree, parentFound] = await Promise.all([
    // A branch name git would refuse in the bundle (the agent may name branches oddly): the
    // recorded one (checked when it was recorded).
    named === meta.branch ? named : git.checkBranch(named).catch(() => meta.branch),
    ws.stageAll(env, head).finally(() => took("stage")),
    commitsHere(ws, env, parentCommits),
  ]);
  // The parent checkpoint's commit becomes a second parent of this one: git leaves out only the
  // trees of excluded commits next to included ones, so only then are the files the parent
  // already holds (untracked and modified ones) left out. The commit lives on a private ref only.
  const when = `@${Math.floor(Date.parse(opts.createdAt) / 1000) || Math.floor(Date.now() / 1000)} +0000`;
  const commitOf = async (second: string[]) => {
    const made = (
      await git.ok(["commit-tree", tree, "-p", head, ...second, "-F", "-"], {
        ...env,
        input: `alpine checkpoint ${opts.id}\n`,
        env: { ...env.env, ...identityEnv({ name: "alpine", email: "alpine@localhost" }, when) },
      })
    ).trim();
    // Both refs the bundle holds, in one git process (ref names hold no spaces or newlines).
    await git.ok(["update-ref", "--stdin"], {
      ...env,
      input: `update refs/heads/${branch} ${head}\nupdate refs/alpine/checkpoints/${opts.id} ${made}\n`,
    });
    return made;
  };
  const parentHere = parentCommits.length > 0 && parentCommits.every((c) => parentFound.has(c));
  const parentCommit = opts.parent?.checkpoint_commit;
  // Made while the remote is asked, on the parent's commit when this repo has it (the usual case);
  // made again without it below when the parent turns out not to be safe to build on.
  const onParent = parentCommit && parentHere ? commitOf(["-p", parentCommit]) : null;
  onParent?.catch(() => {});
  // The bundle on the parent alone, written while the remote is asked (the usual case: the
  // remote's answer only confirms the parent as a base). It stands only if the answer keeps the
  // parent (decisions/thin-bundle.ts); otherwise it is written again below, so a base that is
  // gone (a force-pushed upstream) is still found now, never at a restore.
  const writeBundle = (exclusions: string[]) =>
    git.runToFile(
      [
        "bundle",
        "create",
        "--quiet",
        "-",
        `refs/heads/${branch}`,
        `refs/alpine/checkpoints/${opts.id}`,
        // On the command line: git before 2.40 reads no revisions from stdin for a bundle.
        ...exclusions.map((c) => `^${c}`),
      ],
      opts.bundleFile,
      { ...env, timeoutMs: LONG_MS },
    );
  const earlyOn = onParent && parentCommit ? [...new Set(parentCommits)] : null;
  const early =
    onParent && earlyOn
      ? onParent.then(async () => {
          const r = await writeBundle(earlyOn);
          took("early_bundle");
          if (r.code === 0)
            ws.log.info("checkpoint bundle written before the remote answered", { checkpoint_id: opts.id });
          return r;
        })
      : null;
  early?.catch(() => {});
  // What is safe elsewhere is left out of the bundle; the branch head is left out when it is
  // (git then writes no ref for it: restore reads head_commit).
  const bases = await safeBases(ws, env, { parent: opts.parent, parentHere, tips, exclude: [] });
  took("bases");
  let verdict = earlyBundleVerdict({
    earlyOn,
    parentBases: bases.parent,
    upstreamBases: bases.upstream,
    chainUpstream: opts.parent?.depends_on?.upstream ?? [],
  });
  if (verdict.action === "check" && earlyOn && onParent) {
    // Tips the parent may not hold (a branch that moved, another branch): leaving them out too
    // changes the bundle only if it drops some of its commits (git leaves out the trees of
    // excluded commits only next to included ones), so the same count of commits keeps it.
    const made = await onParent.catch(() => null);
    const count = (not: string[]) =>
      made
        ? git.run(["rev-list", "--count", made, "--not", ...not], env)
        : Promise.resolve({ code: 1, stdout: "" });
    const [onlyParent, withTips] = await Promise.all([
      count(earlyOn),
      count([...earlyOn, ...verdict.uncovered]),
    ]);
    const same =
      onlyParent.code === 0 && withTips.code === 0 && onlyParent.stdout.trim() === withTips.stdout.trim();
    verdict = same ? { action: "keep" } : { action: "rebuild" };
  }
  let commit: string;
  let exclusions: string[];
  let res: Awaited<ReturnType<typeof writeBundle>>;
  const earlyRes = verdict.action === "keep" && early ? await early.catch(() => null) : null;
  if (earlyRes && earlyRes.code === 0 && onParent && earlyOn) {
    commit = await onParent;
    took("commit");
    exclusions = earlyOn;
    res = earlyRes;
  } else {
    if (early) {
      // It ends (and stops writing the file) before the bundle is written again, to a new file.
      await early.catch(() => {});
      rmSync(opts.bundleFile, { force: true });
      ws.log.info("the bundle written before the remote answered does not stand; writing it again", {
        checkpoint_id: opts.id,
        parent_kept: bases.parent.length > 0,
      });
    }
    if (onParent && parentCommit && bases.parent.includes(parentCommit)) {
      commit = await onParent;
    } else {
      // The one made on the parent has set the ref (or failed) before this one sets it again.
      if (onParent) await onParent.catch(() => {});
      commit = await commitOf([]);
    }
    took("commit");
    exclusions = [...new Set([...bases.parent, ...bases.upstream])];
    res = await writeBundle(exclusions);
  }
  if (res.code !== 0 || res.sha256 === undefined || res.bytes === undefined) {
    throw new AlpineError("checkpoint_failed", `git bundle failed: ${firstLine(res.stderr)}`, {
      stderr: res.stderr.slice(0, 2000),
    });
  }
  took("bundle");
  const snap: Snapshot = {
    branch,
    head,
    commit,
    tree,
    bundle: { sha256: res.sha256, bytes: res.bytes },
    phases: took.phases,
  };
  const prerequisites = bundlePrerequisites(opts.bundleFile);
  if (exclusions.length === 0) return snap;
  // git leaves out every object reachable from an excluded commit (its trees and blobs too), but
  // lists as prerequisites only the excluded commits next to included ones. So the chain is a
  // dependency whenever the parent's commits were excluded, whatever the prerequisites say.
  const usesParent = bases.parent.length > 0;
  const inParent = async (c: string) => {
    // The parent's own commits are the usual prerequisites: no git process for them.
    if (bases.parent.includes(c)) return true;
    for (const p of bases.parent) {
      const r = await git.run(["merge-base", "--is-ancestor", "--end-of-options", c, p], env);
      if (r.code === 0) return true;
    }
    return false;
  };
  const ownership = await Promise.all(prerequisites.map(async (c) => ({ c, inParent: await inParent(c) })));
  const own = ownership.filter((o) => !o.inParent).map((o) => o.c);
  // Upstream tips excluded without any prerequisite of theirs (unrelated history) still left
  // their objects out: then they are what the bundle needs from upstream.
  if (!usesParent && prerequisites.length === 0) own.push(...bases.upstream);
  const parent = opts.parent;
  // Upstream commits the whole chain needs: this bundle's, and its parent chain's.
  const upstream = [...new Set([...own, ...(usesParent ? (parent?.depends_on?.upstream ?? []) : [])])];
  const bundleOf = (m: CheckpointManifestData) =>
    m.artifacts.find((a) => a.name === "workspace.bundle")!.sha256;
  snap.dependsOn = {
    checkpoints:
      usesParent && parent
        ? [
            ...(parent.depends_on?.checkpoints ?? []),
            { checkpoint_id: parent.checkpoint_id, sha256: bundleOf(parent) },
          ]
        : [],
    upstream,
    prerequisites,
  };
  return snap;
}

/** Where a restore gets the upstream commits a thin checkpoint builds on. */
export interface UpstreamFetch {
  remote: { url: string; credentials?: { credentials: GitCredentials; target: CredentialTarget } };
  /** The host's repo cache, brought up to date (null: none to be had). */
  cache?: () => Promise<string | null>;
}

/** Fetches the remote's branches as origin's (from the repo cache when there is one); every upstream commit must arrive. */
async function fetchUpstream(
  ws: Workspace,
  env: { env: Record<string, string>; cwd: string },
  from: UpstreamFetch,
  manifest: CheckpointManifestData,
): Promise<void> {
  const { git } = ws;
  const needed = manifest.depends_on?.upstream ?? [];
  // A commit that is missing makes rev-list fail; one not reachable from a ref is listed.
  const all = async () => {
    const r = await git.run(["rev-list", "--max-count=1", ...needed, "--not", "--all"], env);
    return r.code === 0 && r.stdout.trim() === "";
  };
  const fetchFrom = (url: string, credentials?: UpstreamFetch["remote"]["credentials"]) =>
    git.run(
      [
        "-c",
        "http.lowSpeedLimit=1000",
        "-c",
        "http.lowSpeedTime=60",
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--",
        url,
        "+refs/heads/*:refs/remotes/origin/*",
      ],
      { ...env, timeoutMs: LONG_MS, credentials },
    );
  const cacheDir = from.cache ? await from.cache() : null;
  if (cacheDir) {
    const r = await fetchFrom(cacheDir);
    if (r.code === 0 && (await all())) return;
    ws.log.warn("the repo cache lacks commits the checkpoint builds on; fetching from the remote", {
      error: firstLine(r.stderr),
    });
  }
  const r = await fetchFrom(from.remote.url, from.remote.credentials);
  if (r.code !== 0 || !(await all())) {
    throw new AlpineError(
      "checkpoint_missing",
      `checkpoint ${manifest.checkpoint_id} builds on upstream commits the repo's remote no longer has${r.code !== 0 ? `: ${firstLine(r.stderr)}` : ""}`,
      { checkpoint_id: manifest.checkpoint_id, upstream: needed.slice(0, 20) },
    );
  }
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
  opts: {
    bundle: string;
    manifest: CheckpointManifestData;
    branch: string;
    repo: ResolvedRepo;
    /** The earlier checkpoints' bundles it builds on, oldest first (RestorePlan.links). */
    links?: { checkpointId: string; path: string }[];
    /** Where its upstream commits come from, when it builds on upstream. */
    upstream?: UpstreamFetch;
  },
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
  // The chain, from its foundation up: upstream's commits (as origin's branches, as a clone has
  // them), then each earlier checkpoint, then this one. git checks each bundle's prerequisites.
  if (opts.upstream) await fetchUpstream(ws, env, opts.upstream, manifest);
  for (const [i, link] of (opts.links ?? []).entries()) {
    const r = await git.run(
      [
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--",
        link.path,
        `+refs/*:refs/alpine/restore/link${i}/*`,
      ],
      { ...env, timeoutMs: LONG_MS },
    );
    if (r.code !== 0) {
      throw new AlpineError(
        "checkpoint_checksum_mismatch",
        `workspace.bundle of ${link.checkpointId} (which ${manifest.checkpoint_id} builds on) cannot be read: ${firstLine(r.stderr)}`,
        { artifact: "workspace.bundle", checkpoint_id: link.checkpointId, stderr: r.stderr.slice(0, 2000) },
      );
    }
  }
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
