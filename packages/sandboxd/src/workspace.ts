import { randomBytes } from "node:crypto";
import {
  closeSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import type { CheckpointManifestData, DiffResponse } from "@alpine/core/sandboxd-api";
import type { GitCredentials } from "./credentials.ts";
import type { Hashed } from "./files.ts";
import {
  checkRef,
  cloneFailureReason,
  firstLine,
  type GitRunner,
  type ResolvedRepo,
  resolveRepo,
  safeShow,
} from "./git.ts";
import type { Logger } from "./log.ts";
import { sleep } from "./proc.ts";
import { IN_PROGRESS, type SpareCheckouts } from "./spare-checkout.ts";

/** Recorded in <workspace>/.git/alpine.json once the checkout exists (no secrets). */
export interface WorkspaceMeta {
  repo: string;
  ref: string | null;
  branch: string;
  base_commit: string;
  created_at: string;
  /** Set when the workspace was rebuilt from a checkpoint. */
  restored_from?: string;
}

/** What a checkpoint captured of the git workspace. */
export interface Snapshot {
  branch: string;
  head: string;
  /** head + the whole working tree, on refs/alpine/checkpoints/<id> in the bundle only. */
  commit: string;
  tree: string;
  bundle: Hashed;
}

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

const LONG_MS = 60 * 60_000;

export type FileStatus = "added" | "modified" | "deleted" | "renamed";

export interface ChangedFile {
  path: string;
  status: FileStatus;
  old_path?: string;
}

export interface WorkspaceStatus {
  repo: string;
  branch: string;
  base_commit: string;
  head: string | null;
  dirty: boolean;
  changed_files: { path: string; status: FileStatus }[];
  ahead: number;
  tree_hash: string | null;
}

const META = "alpine.json";

/**
 * The git workspace. Clone/checkout happen before the agent runs. Everything
 * after (status, diff) reads a workspace the agent controls, so it runs git
 * against a private "shadow" git dir (sandboxd's own config: no filters,
 * hooks, fsmonitor, textconv or external diff from the workspace's config can
 * run on the host), the workspace's objects as an alternate, and a throw-away
 * index: the real index is never touched.
 */
export class Workspace {
  private meta: WorkspaceMeta | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private shadowReady = false;

  constructor(
    readonly dir: string,
    /** Private to sandboxd (not visible to the agent under bubblewrap). */
    private readonly shadowDir: string,
    private readonly git: GitRunner,
    private readonly log: Logger,
  ) {}

  get gitDir(): string {
    return join(this.dir, ".git");
  }

  /** .git exists and is a real directory (a gitfile could point anywhere). */
  hasGitDir(): boolean {
    try {
      return lstatSync(this.gitDir).isDirectory();
    } catch {
      return false;
    }
  }

  loadMeta(): WorkspaceMeta | null {
    if (this.meta) return this.meta;
    if (!this.hasGitDir()) return null;
    try {
      const text = readSmallFile(join(this.gitDir, META));
      if (text === undefined) return null;
      const m = JSON.parse(text) as WorkspaceMeta;
      if (typeof m.repo === "string" && typeof m.base_commit === "string" && typeof m.branch === "string") {
        this.meta = m;
        return m;
      }
    } catch {
      // no or unreadable meta: not a finished clone
    }
    return null;
  }

  /** For read-only commands on the workspace's own git dir (refs, commits): sandboxd's config only. */
  private repoOpts(): { env: Record<string, string>; isolatedConfig: string } {
    this.ensureShadow();
    return { env: { GIT_DIR: this.gitDir }, isolatedConfig: this.shadowDir };
  }

  /**
   * Clones repo into the (empty) workspace and checks out `branch` at `ref`
   * (default: the remote's default branch). Resolves when the checkout exists.
   */
  async clone(
    repo: ResolvedRepo,
    ref: string | undefined,
    branch: string,
    credentials: GitCredentials | undefined,
    /** A bare cache of the repo, up to date with the remote (RepoCache.refresh), and its spares. */
    cache?: { dir: string; dissociate: boolean; spares?: SpareCheckouts },
  ): Promise<WorkspaceMeta> {
    if (ref !== undefined) checkRef(ref);
    mkdirSync(this.dir, { recursive: true });
    this.clearUnfinished();

    const creds = credentials ?? repo.urlCredentials;
    const fromRemote = () => {
      // Give up on a transfer slower than 1 KB/s for a minute rather than hang.
      const args = ["-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60"];
      args.push("clone", "--no-checkout", "--origin", "origin");
      if (repo.local) args.push("--no-hardlinks");
      args.push("--", repo.url, this.dir);
      return this.git.run(args, {
        cwd: dirname(this.dir),
        timeoutMs: 60 * 60_000,
        credentials: creds && repo.target ? { credentials: creds, target: repo.target } : undefined,
      });
    };
    let res: Awaited<ReturnType<typeof fromRemote>> | null = null;
    const fromSpare = cache?.spares?.claim(cache.dir, this.dir) ?? false;
    // A move that failed half-way left a `.git` marked in progress: ours to clear.
    if (cache?.spares && !fromSpare) this.clearUnfinished();
    if (fromSpare && cache) {
      // A spare checkout of this repo (spare-checkout.ts): its work tree is already written.
      res = await this.catchUpWithCache(cache.dir, repo);
      if (res.code === 0) this.log.info("workspace made from the spare checkout", { cache: cache.dir });
      else {
        this.log.warn("spare checkout could not catch up with the repo cache; cloning", {
          error: firstLine(res.stderr),
        });
        this.clearUnfinished();
        res = null;
      }
    }
    if (cache && !res) {
      // No network: the cache was just brought up to date. Its objects are borrowed
      // (objects/info/alternates; the agent reads them through a read-only mount), or copied
      // when the agent cannot see the cache; never hard-linked (the agent could write them).
      res = await this.git.run(
        [
          "clone",
          "--no-checkout",
          "--origin",
          "origin",
          cache.dissociate ? "--no-hardlinks" : "--shared",
          "--",
          cache.dir,
          this.dir,
        ],
        { cwd: dirname(this.dir), timeoutMs: 60 * 60_000 },
      );
      if (res.code === 0) {
        const url = await this.git.run(["config", "remote.origin.url", repo.url], {
          env: { GIT_DIR: this.gitDir },
        });
        if (url.code !== 0) res = url;
      }
      if (res.code !== 0) {
        // A damaged cache must not make the launch fail: clone as if there were none.
        this.log.warn("clone from the repo cache failed; cloning from the remote", {
          error: firstLine(res.stderr),
        });
        this.clearUnfinished();
        res = null;
      }
    }
    res ??= await fromRemote();
    if (res.code !== 0) {
      this.clearUnfinished();
      const reason = cloneFailureReason(res.stderr);
      throw new AlpineError(reason, `cannot clone ${repo.display}: ${firstLine(res.stderr)}`, {
        repo: repo.display,
        stderr: res.stderr.slice(0, 2000),
      });
    }

    // Until alpine.json exists this marks the clone as ours to clear if it never finishes.
    writeFileSync(join(this.gitDir, IN_PROGRESS), "");
    const env = { GIT_DIR: this.gitDir, GIT_WORK_TREE: this.dir };
    let refName: string | null = ref ?? null;
    let commit: string | undefined;
    if (ref === undefined) {
      const head = await this.git.run(["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"], { env });
      const name = head.stdout.trim();
      if (head.code !== 0 || !name) {
        throw new AlpineError("ref_not_found", `${repo.display} has no default branch (is it empty?)`, {
          repo: repo.display,
        });
      }
      refName = name.replace(/^refs\/remotes\/origin\//, "");
      commit = await this.resolveCommit(name, env);
    } else {
      for (const candidate of [`refs/remotes/origin/${ref}`, `refs/tags/${ref}`, ref]) {
        commit = await this.resolveCommit(candidate, env);
        if (commit) break;
      }
    }
    if (!commit) {
      throw new AlpineError("ref_not_found", `ref '${ref}' was not found in ${repo.display}`, {
        repo: repo.display,
        ref: ref ?? null,
      });
    }
    await this.git.ok(["checkout", "--quiet", "--no-track", "-B", branch, commit, "--"], {
      env,
      cwd: this.dir,
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
    writeFileSync(join(this.gitDir, META), JSON.stringify(meta, null, 2) + "\n");
    rmSync(join(this.gitDir, IN_PROGRESS), { force: true });
    this.meta = meta;
    this.log.info("workspace checked out", { repo: repo.display, ref: refName, branch, base_commit: commit });
    return meta;
  }

  /**
   * A workspace made from a spare checkout has the refs of the cache as it was
   * when the spare was made: fetch what the cache has now (objects are copied,
   * the workspace keeps no tie to the cache), point origin/HEAD and the local
   * default branch where a fresh clone would, and give origin the repo's URL.
   */
  private async catchUpWithCache(cacheDir: string, repo: ResolvedRepo) {
    const env = { GIT_DIR: this.gitDir };
    const fetched = await this.git.run(
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
    const head = await this.git.run(["symbolic-ref", "--quiet", "HEAD"], { env: { GIT_DIR: cacheDir } });
    const name = head.stdout.trim().replace(/^refs\/heads\//, "");
    if (head.code === 0 && name) {
      for (const args of [
        ["symbolic-ref", "refs/remotes/origin/HEAD", `refs/remotes/origin/${name}`],
        ["update-ref", "--no-deref", `refs/heads/${name}`, `refs/remotes/origin/${name}`],
      ]) {
        const r = await this.git.run(args, { env });
        if (r.code !== 0) return r;
      }
    }
    return this.git.run(["config", "remote.origin.url", repo.url], { env });
  }

  /**
   * Removes a clone that never finished (no alpine.json). Only what is
   * recognisably ours: an empty dir, a bare `.git` from `clone --no-checkout`,
   * or a checkout marked in progress. Anything else is refused, never deleted.
   */
  private clearUnfinished(): void {
    const entries = readdirSync(this.dir);
    if (entries.length === 0) return;
    const ours =
      (entries.length === 1 && entries[0] === ".git") ||
      (this.hasGitDir() && readSmallFile(join(this.gitDir, IN_PROGRESS)) !== undefined);
    if (!ours) {
      throw new AlpineError(
        "internal_error",
        `workspace_dir ${this.dir} is not empty and not an alpine workspace`,
        {
          workspace_dir: this.dir,
          entries: entries.slice(0, 20),
        },
      );
    }
    for (const entry of entries) rmSync(join(this.dir, entry), { recursive: true, force: true });
  }

  private async resolveCommit(rev: string, env: Record<string, string>): Promise<string | undefined> {
    const res = await this.git.run(
      ["rev-parse", "--verify", "--quiet", "--end-of-options", `${rev}^{commit}`],
      {
        env,
      },
    );
    const sha = res.stdout.trim();
    return res.code === 0 && /^[0-9a-f]{40,64}$/.test(sha) ? sha : undefined;
  }

  /** Serialises workspace reads (they share the shadow git dir). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  /**
   * The status of a checkout nobody has touched yet (right after clone):
   * HEAD is the base commit and the work tree is its tree, so nothing needs
   * scanning. Later reads use status().
   */
  async checkoutStatus(): Promise<WorkspaceStatus | null> {
    const meta = this.loadMeta();
    if (!meta) return null;
    const tree = await this.git.run(
      ["rev-parse", "--verify", "--quiet", "--end-of-options", `${meta.base_commit}^{tree}`],
      this.repoOpts(),
    );
    return {
      repo: meta.repo,
      branch: meta.branch,
      base_commit: meta.base_commit,
      head: meta.base_commit,
      dirty: false,
      changed_files: [],
      ahead: 0,
      tree_hash: tree.code === 0 ? tree.stdout.trim() : null,
    };
  }

  async status(): Promise<WorkspaceStatus | null> {
    const meta = this.loadMeta();
    if (!meta) return null;
    return this.exclusive(async () => {
      const head = await this.head();
      const branchRes = await this.git.run(["symbolic-ref", "--quiet", "--short", "HEAD"], this.repoOpts());
      const branch = branchRes.code === 0 ? branchRes.stdout.trim() : "HEAD";
      return this.withWorktreeIndex(async (env) => {
        const changed = await this.nameStatus(env, meta.base_commit);
        let dirty = true;
        if (head) {
          const d = await this.git.run(["diff", "--cached", "--quiet", "--no-ext-diff", head, "--"], env);
          dirty = d.code !== 0;
        }
        let ahead = 0;
        if (head) {
          const out = await this.git.run(
            ["rev-list", "--count", `${meta.base_commit}..${head}`, "--"],
            this.repoOpts(),
          );
          ahead = Number(out.stdout.trim()) || 0;
        }
        const tree = await this.git.run(["write-tree"], env);
        return {
          repo: meta.repo,
          branch,
          base_commit: meta.base_commit,
          head,
          dirty,
          changed_files: changed.map(({ path, status }) => ({ path, status })),
          ahead,
          tree_hash: tree.code === 0 ? tree.stdout.trim() : null,
        };
      });
    });
  }

  async diff(stat: boolean): Promise<DiffResponse> {
    const meta = this.loadMeta();
    if (!meta) throw new AlpineError("sandbox_not_running", "the workspace is not initialised yet");
    return this.exclusive(() =>
      this.withWorktreeIndex(async (env) => {
        const changed = await this.nameStatus(env, meta.base_commit);
        const numstat = await this.git.ok(
          [
            "diff",
            "--cached",
            "-M",
            "--numstat",
            "-z",
            "--no-ext-diff",
            "--no-textconv",
            meta.base_commit,
            "--",
          ],
          env,
        );
        const counts = parseNumstat(numstat);
        const files = changed.map((f) => {
          const c = counts.get(f.path);
          return {
            path: f.path,
            status: f.status,
            ...(f.old_path !== undefined ? { old_path: f.old_path } : {}),
            insertions: c?.insertions ?? 0,
            deletions: c?.deletions ?? 0,
            ...(c?.binary ? { binary: true } : {}),
          };
        });
        if (stat) return { files, patch: "" };
        const patch = await this.git.ok(
          [
            "diff",
            "--cached",
            "-M",
            "--binary",
            "--no-ext-diff",
            "--no-textconv",
            "--no-color",
            meta.base_commit,
            "--",
          ],
          env,
        );
        return { files, patch };
      }),
    );
  }

  async head(): Promise<string | null> {
    const res = await this.git.run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], this.repoOpts());
    return res.code === 0 ? res.stdout.trim() : null;
  }

  private async nameStatus(env: GitEnv, base: string): Promise<ChangedFile[]> {
    const out = await this.git.ok(
      ["diff", "--cached", "-M", "--name-status", "-z", "--no-ext-diff", base, "--"],
      env,
    );
    return parseNameStatus(out);
  }

  /** The shadow git dir: sandboxd's config, the workspace's objects as alternate. */
  private ensureShadow(): void {
    if (this.shadowReady) return;
    mkdirSync(join(this.shadowDir, "objects", "info"), { recursive: true });
    mkdirSync(join(this.shadowDir, "refs"), { recursive: true });
    mkdirSync(join(this.shadowDir, "info"), { recursive: true });
    writeFileSync(join(this.shadowDir, "HEAD"), "ref: refs/heads/shadow\n");
    writeFileSync(
      join(this.shadowDir, "config"),
      "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tfilemode = true\n\tlogallrefupdates = false\n[gc]\n\tauto = 0\n",
    );
    writeFileSync(join(this.shadowDir, "objects", "info", "alternates"), join(this.gitDir, "objects") + "\n");
    this.shadowReady = true;
  }

  /**
   * Builds a throw-away index holding the whole working tree (tracked and
   * untracked-not-ignored files, deletions) and runs fn with the env to use it.
   */
  private async withWorktreeIndex<T>(fn: (env: GitEnv) => Promise<T>): Promise<T> {
    if (!this.hasGitDir()) throw new AlpineError("internal_error", "the workspace's .git is missing");
    this.ensureShadow();
    // The workspace's ignore rules (patterns only; nothing executable).
    const exclude = readSmallFile(join(this.gitDir, "info", "exclude"));
    if (exclude !== undefined) writeFileSync(join(this.shadowDir, "info", "exclude"), exclude);
    else rmSync(join(this.shadowDir, "info", "exclude"), { force: true });
    const index = join(this.shadowDir, `index-${randomBytes(6).toString("hex")}`);
    const env: GitEnv = {
      cwd: this.dir,
      isolatedConfig: this.shadowDir,
      env: {
        GIT_DIR: this.shadowDir,
        GIT_WORK_TREE: this.dir,
        GIT_INDEX_FILE: index,
        GIT_OPTIONAL_LOCKS: "0",
        GIT_CONFIG_NOSYSTEM: "1",
      },
    };
    try {
      let seeded = false;
      // Start from the real index's stat cache so unchanged files are not re-hashed.
      try {
        const st = lstatSync(join(this.gitDir, "index"));
        if (st.isFile()) {
          copyFileSync(join(this.gitDir, "index"), index);
          seeded = true;
        }
      } catch {
        // no index yet
      }
      let add = seeded ? await this.git.run(["add", "-A", "--", "."], env) : undefined;
      if (add?.code !== 0) {
        // A split/odd real index: start from HEAD's tree instead.
        rmSync(index, { force: true });
        const head = await this.head();
        if (head) await this.git.ok(["read-tree", head], env);
        add = await this.git.run(["add", "-A", "--", "."], env);
        if (add.code !== 0) {
          throw new AlpineError("internal_error", `cannot read the workspace: ${firstLine(add.stderr)}`, {
            stderr: add.stderr.slice(0, 2000),
          });
        }
      }
      return await fn(env);
    } finally {
      rmSync(index, { force: true });
      rmSync(`${index}.lock`, { force: true });
      // Blobs hashed for this view are not needed again: keep the shadow dir from growing.
      const objects = join(this.shadowDir, "objects");
      for (const d of readdirSync(objects)) {
        if (/^[0-9a-f]{2}$/.test(d)) rmSync(join(objects, d), { recursive: true, force: true });
      }
    }
  }

  // -------------------------------------------------------------------------
  // Checkpoint, restore, export. Everything that reads or writes the working
  // tree (add, checkout-index) runs against a private git dir with sandboxd's
  // own config (privateRepo): filters, fsmonitor, hooks, textconv, gpg or
  // anything else the agent put into the workspace's .git/config never runs.
  // Only ref reads and the one ref update of an export use the workspace's git
  // dir, with hooks, fsmonitor, signing and reflogs switched off on the
  // command line (which wins over the repo's config).

  /**
   * A private git dir at `dir`: sandboxd's config, the workspace's ignore
   * patterns, and either its own object store with the workspace's objects as
   * an alternate ("private": nothing is written into the workspace) or the
   * workspace's object store itself ("workspace": new objects land there).
   */
  private privateRepo(dir: string, objects: "private" | "workspace"): GitEnv {
    if (!this.hasGitDir()) throw new AlpineError("internal_error", "the workspace's .git is missing");
    for (const d of ["objects/info", "refs/heads", "info"])
      mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, "HEAD"), "ref: refs/heads/alpine-private\n");
    writeFileSync(
      join(dir, "config"),
      "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tfilemode = true\n\tsymlinks = true\n\tlogallrefupdates = false\n[gc]\n\tauto = 0\n",
    );
    const exclude = readSmallFile(join(this.gitDir, "info", "exclude"));
    if (exclude !== undefined) writeFileSync(join(dir, "info", "exclude"), exclude);
    const env: Record<string, string> = {
      GIT_DIR: dir,
      GIT_WORK_TREE: this.dir,
      GIT_INDEX_FILE: join(dir, "index"),
      GIT_CONFIG_NOSYSTEM: "1",
    };
    if (objects === "private") {
      writeFileSync(join(dir, "objects", "info", "alternates"), join(this.gitDir, "objects") + "\n");
    } else {
      env.GIT_OBJECT_DIRECTORY = join(this.gitDir, "objects");
    }
    return { cwd: this.dir, isolatedConfig: dir, env };
  }

  /** HEAD of the workspace: its commit and the branch it points at (null when detached). */
  async currentRef(): Promise<{ ref: string | null; head: string | null }> {
    const head = await this.head();
    const sym = await this.git.run(["symbolic-ref", "--quiet", "HEAD"], this.repoOpts());
    const ref = sym.code === 0 && sym.stdout.trim().startsWith("refs/heads/") ? sym.stdout.trim() : null;
    return { ref, head };
  }

  /** The index of env = HEAD's tree + the whole working tree (tracked, untracked, not ignored); returns its tree. */
  private async stageAll(env: GitEnv, head: string): Promise<string> {
    await this.git.ok(["read-tree", head], env);
    const add = await this.git.run(["add", "-A", "--", "."], { ...env, timeoutMs: LONG_MS });
    if (add.code !== 0) {
      throw new AlpineError("internal_error", `cannot read the workspace: ${firstLine(add.stderr)}`, {
        stderr: add.stderr.slice(0, 2000),
      });
    }
    return (await this.git.ok(["write-tree"], env)).trim();
  }

  /**
   * Checkpoint of the git side, in the private dir `privateDir` (nothing is
   * written to the workspace): a commit of the whole working tree on top of
   * HEAD, and a self-contained bundle (full history) of the branch and
   * refs/alpine/checkpoints/<id>. The private dir, and with it that ref, is
   * deleted by the caller once the bundle exists.
   */
  async snapshot(opts: {
    id: string;
    createdAt: string;
    privateDir: string;
    bundleFile: string;
  }): Promise<Snapshot> {
    const meta = this.loadMeta();
    if (!meta) throw new AlpineError("sandbox_not_running", "the workspace is not initialised yet");
    const { ref, head } = await this.currentRef();
    if (!head) throw new AlpineError("checkpoint_failed", "the workspace's HEAD is not a commit", {});
    let branch = ref ? ref.slice("refs/heads/".length) : meta.branch;
    branch = await this.git.checkBranch(branch).catch(() => meta.branch);
    const env = this.privateRepo(opts.privateDir, "private");
    await this.git.ok(["update-ref", `refs/heads/${branch}`, head], env);
    const tree = await this.stageAll(env, head);
    const when = `@${Math.floor(Date.parse(opts.createdAt) / 1000) || Math.floor(Date.now() / 1000)} +0000`;
    const commit = (
      await this.git.ok(["commit-tree", tree, "-p", head, "-F", "-"], {
        ...env,
        input: `alpine checkpoint ${opts.id}\n`,
        env: { ...env.env, ...identityEnv({ name: "alpine", email: "alpine@localhost" }, when) },
      })
    ).trim();
    await this.git.ok(["update-ref", `refs/alpine/checkpoints/${opts.id}`, commit], env);
    const res = await this.git.runToFile(
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

  /** True when the workspace dir is missing, empty, or an unfinished clone/restore of ours. */
  isFresh(): boolean {
    let entries: string[];
    try {
      entries = readdirSync(this.dir);
    } catch {
      return true;
    }
    if (entries.length === 0) return true;
    if (this.loadMeta()) return false;
    return (
      (entries.length === 1 && entries[0] === ".git") ||
      (this.hasGitDir() && readSmallFile(join(this.gitDir, IN_PROGRESS)) !== undefined)
    );
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
  async restore(opts: {
    bundle: string;
    manifest: CheckpointManifestData;
    branch: string;
    repo: ResolvedRepo;
  }): Promise<WorkspaceMeta> {
    const { manifest, branch } = opts;
    mkdirSync(this.dir, { recursive: true });
    this.meta = null;
    this.clearUnfinished();
    const damaged = (why: string, extra: Record<string, unknown> = {}) =>
      new AlpineError(
        "checkpoint_checksum_mismatch",
        `workspace.bundle of ${manifest.checkpoint_id} ${why}`,
        {
          artifact: "workspace.bundle",
          checkpoint_id: manifest.checkpoint_id,
          ...extra,
        },
      );
    await this.git.ok(["init", "--quiet", "--", this.dir], { cwd: dirname(this.dir) });
    writeFileSync(join(this.gitDir, IN_PROGRESS), "");
    const env = { env: { GIT_DIR: this.gitDir, GIT_WORK_TREE: this.dir }, cwd: this.dir };
    const fetch = await this.git.run(
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
      const r = await this.git.run(["rev-parse", "--verify", "--quiet", "--end-of-options", expr], env);
      return r.code === 0 ? r.stdout.trim() : null;
    };
    if ((await rev(`${manifest.head_commit}^{commit}`)) !== manifest.head_commit) {
      throw damaged(`lacks head_commit ${manifest.head_commit}`);
    }
    if ((await rev(`${manifest.checkpoint_commit}^{tree}`)) !== manifest.tree_hash) {
      throw damaged(`lacks checkpoint_commit ${manifest.checkpoint_commit} with tree ${manifest.tree_hash}`);
    }
    // The working tree = the checkpoint's tree (checkout into an empty dir: nothing else exists).
    await this.git.ok(["read-tree", manifest.checkpoint_commit], env);
    await this.git.ok(["checkout-index", "--all", "--force", "--quiet"], { ...env, timeoutMs: LONG_MS });
    // HEAD = branch at head_commit; the index = HEAD (with fresh stat data), so changes show as unstaged/untracked.
    await this.git.ok(["symbolic-ref", "HEAD", `refs/heads/${branch}`], env);
    await this.git.ok(["update-ref", `refs/heads/${branch}`, manifest.head_commit], env);
    await this.git.ok(["read-tree", manifest.head_commit], env);
    await this.git.run(["update-index", "-q", "--refresh"], { ...env, timeoutMs: LONG_MS });
    const temp = await this.git.ok(["for-each-ref", "--format=%(refname)", "refs/alpine/restore/"], env);
    const deletes = temp
      .split("\n")
      .filter(Boolean)
      .map((r) => `delete ${r}\n`)
      .join("");
    if (deletes) await this.git.ok(["update-ref", "--stdin"], { ...env, input: deletes });
    await this.git.ok(["remote", "add", "origin", opts.repo.url], env);
    const meta: WorkspaceMeta = {
      repo: opts.repo.display,
      ref: null,
      branch,
      base_commit: manifest.base_commit,
      created_at: new Date().toISOString(),
      restored_from: manifest.checkpoint_id,
    };
    writeFileSync(join(this.gitDir, META), JSON.stringify(meta, null, 2) + "\n");
    rmSync(join(this.gitDir, IN_PROGRESS), { force: true });
    this.meta = meta;
    this.log.info("workspace restored", {
      checkpoint_id: manifest.checkpoint_id,
      branch,
      head: manifest.head_commit,
      base_commit: manifest.base_commit,
    });
    return meta;
  }

  /** Empties a workspace this sandboxd was restoring into (after a failed restore). */
  clearRestore(): void {
    this.meta = null;
    try {
      for (const entry of readdirSync(this.dir))
        rmSync(join(this.dir, entry), { recursive: true, force: true });
    } catch {
      // nothing there
    }
  }

  /**
   * Commits the whole working tree (tracked + untracked, not ignored) on top
   * of HEAD with the given message and author (= committer), built in the
   * private dir with the workspace's object store, then moves the workspace's
   * branch (compare-and-swap against the HEAD it started from) and replaces
   * its index with one matching the commit. When the tree already equals
   * HEAD's, HEAD is the result; when HEAD also is the base, nothing_to_export.
   */
  async commitAll(opts: {
    privateDir: string;
    message: string;
    author: { name: string; email: string };
  }): Promise<CommittedWork> {
    const meta = this.loadMeta();
    if (!meta) throw new AlpineError("sandbox_not_running", "the workspace is not initialised yet");
    const { ref, head } = await this.currentRef();
    if (!head) throw new AlpineError("internal_error", "the workspace's HEAD is not a commit", {});
    const env = this.privateRepo(opts.privateDir, "workspace");
    const tree = await this.stageAll(env, head);
    const headTree = (await this.git.ok(["rev-parse", "--verify", `${head}^{tree}`], env)).trim();
    if (tree === headTree) {
      if (head === meta.base_commit) {
        throw new AlpineError("nothing_to_export", "the sandbox has no changes and no commits to export", {
          base_commit: meta.base_commit,
        });
      }
      return { commit: head, tree, head, created: false, env };
    }
    const commit = (
      await this.git.ok(["commit-tree", tree, "-p", head, "-F", "-"], {
        ...env,
        input: opts.message.endsWith("\n") ? opts.message : `${opts.message}\n`,
        env: { ...env.env, ...identityEnv(opts.author) },
      })
    ).trim();
    await this.advance(ref, commit, head);
    await this.replaceIndex(join(opts.privateDir, "index"));
    this.log.info("work committed", { commit, head, ref: ref ?? "HEAD (detached)" });
    return { commit, tree, head, created: true, env };
  }

  /** Moves ref (or a detached HEAD) from `old` to `next`; fails if someone moved it meanwhile. */
  private async advance(ref: string | null, next: string, old: string): Promise<void> {
    // The ref's parent dirs must be real dirs: git would follow a symlink the agent put there.
    const parts = (ref ?? "HEAD").split("/");
    let p = this.gitDir;
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
    const res = await this.git.run(args, this.repoOpts());
    if (res.code !== 0) {
      throw new AlpineError(
        "operation_in_progress",
        `the sandbox branch moved while exporting (the agent committed?); try again: ${firstLine(res.stderr)}`,
        { stderr: res.stderr.slice(0, 2000) },
      );
    }
  }

  /** Installs `index` as the workspace's index with git's lock protocol (skipped, with a warning, while locked). */
  private async replaceIndex(index: string): Promise<void> {
    const lock = join(this.gitDir, "index.lock");
    for (let attempt = 0; attempt < 10; attempt++) {
      let fd: number;
      try {
        fd = openSync(lock, "wx", 0o644);
      } catch {
        await sleep(100);
        continue;
      }
      try {
        writeSync(fd, readFileSync(index));
      } finally {
        closeSync(fd);
      }
      renameSync(lock, join(this.gitDir, "index"));
      return;
    }
    this.log.warn("the workspace's index stayed locked; it still describes the previous HEAD", {});
  }

  /** `git diff --numstat base commit`: files (binary ones included) and line counts. */
  async numstat(
    env: GitEnv,
    base: string,
    commit: string,
  ): Promise<{ files: number; insertions: number; deletions: number }> {
    const out = await this.git.ok(
      ["diff", "--numstat", "-z", "-M", "--no-ext-diff", "--no-textconv", base, commit, "--"],
      env,
    );
    let insertions = 0;
    let deletions = 0;
    const counts = parseNumstat(out);
    for (const c of counts.values()) {
      insertions += c.insertions;
      deletions += c.deletions;
    }
    return { files: counts.size, insertions, deletions };
  }

  /**
   * Pushes `commit` to refs/heads/<branch> of the sandbox's repo (the URL it
   * was created from, not whatever the workspace's config now says), from the
   * private git dir, with credentials through the broker.
   */
  async push(opts: {
    env: GitEnv;
    commit: string;
    branch: string;
    credentials: GitCredentials | undefined;
  }): Promise<{ remote: string }> {
    const meta = this.loadMeta();
    if (!meta) throw new AlpineError("sandbox_not_running", "the workspace is not initialised yet");
    const repo = resolveRepo(meta.repo);
    const res = await this.git.run(
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
      {
        ...opts.env,
        timeoutMs: LONG_MS,
        credentials:
          opts.credentials && repo.target
            ? { credentials: opts.credentials, target: repo.target }
            : undefined,
      },
    );
    if (res.code !== 0) {
      const text = `${res.stdout}\n${res.stderr}`.trim();
      const rejected = res.stdout.split("\n").some((l) => l.startsWith("!"));
      const why =
        res.stdout
          .split("\n")
          .find((l) => l.startsWith("!"))
          ?.split("\t")
          .slice(2)
          .join(" ") || firstLine(res.stderr);
      throw new AlpineError(
        rejected ? "push_rejected" : "repo_unreachable",
        `pushing ${opts.branch} to ${repo.display} failed: ${why || "git push failed"}`,
        { branch: opts.branch, remote: repo.display, git: text.slice(0, 2000) },
      );
    }
    this.log.info("pushed", { branch: opts.branch, commit: opts.commit, remote: repo.display });
    return { remote: repo.display };
  }
}

/** A regular file's text (not a symlink, FIFO or device; at most 1 MiB), else undefined. */
function readSmallFile(path: string): string | undefined {
  try {
    const st = lstatSync(path);
    if (!st.isFile() || st.size > 1024 * 1024) return undefined;
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

type GitEnv = { cwd: string; isolatedConfig: string; env: Record<string, string> };

const STATUS_OF: Record<string, FileStatus> = {
  A: "added",
  C: "added",
  M: "modified",
  T: "modified",
  D: "deleted",
  R: "renamed",
};

export function parseNameStatus(out: string): ChangedFile[] {
  const parts = out.split("\0");
  const files: ChangedFile[] = [];
  let i = 0;
  while (i < parts.length) {
    const code = parts[i];
    if (!code) {
      i++;
      continue;
    }
    const letter = code[0]!;
    if (letter === "R" || letter === "C") {
      const from = parts[i + 1] ?? "";
      const to = parts[i + 2] ?? "";
      files.push(
        letter === "R" ? { path: to, status: "renamed", old_path: from } : { path: to, status: "added" },
      );
      i += 3;
    } else {
      files.push({ path: parts[i + 1] ?? "", status: STATUS_OF[letter] ?? "modified" });
      i += 2;
    }
  }
  return files;
}

export function parseNumstat(
  out: string,
): Map<string, { insertions: number; deletions: number; binary: boolean }> {
  const map = new Map<string, { insertions: number; deletions: number; binary: boolean }>();
  const parts = out.split("\0");
  let i = 0;
  while (i < parts.length) {
    const rec = parts[i];
    if (!rec) {
      i++;
      continue;
    }
    const [ins, del, path] = rec.split("\t");
    const binary = ins === "-";
    const entry = {
      insertions: binary ? 0 : Number(ins) || 0,
      deletions: binary ? 0 : Number(del) || 0,
      binary,
    };
    if (path === "") {
      // rename: "ins\tdel\t\0old\0new\0"
      const to = parts[i + 2] ?? "";
      map.set(to, entry);
      i += 3;
    } else {
      map.set(path ?? "", entry);
      i += 1;
    }
  }
  return map;
}

/** Author and committer for a commit sandboxd makes (control characters and <> removed). */
function identityEnv(who: { name: string; email: string }, date?: string): Record<string, string> {
  const clean = (v: string) => v.replace(/[\u0000-\u001f\u007f<>]/g, "").trim();
  const env: Record<string, string> = {
    GIT_AUTHOR_NAME: clean(who.name),
    GIT_AUTHOR_EMAIL: clean(who.email),
    GIT_COMMITTER_NAME: clean(who.name),
    GIT_COMMITTER_EMAIL: clean(who.email),
  };
  if (date) {
    env.GIT_AUTHOR_DATE = date;
    env.GIT_COMMITTER_DATE = date;
  }
  return env;
}
