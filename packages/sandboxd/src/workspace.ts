import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import { firstLine, type GitRunner } from "./git.ts";
import type { Logger } from "./log.ts";
import { IN_PROGRESS } from "./spare-checkout.ts";

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

/** How a git command is pointed at a private git dir (see Workspace.privateRepo and views). */
export type GitEnv = { cwd: string; isolatedConfig: string; env: Record<string, string> };

/** Long git work (clone, bundle, push, checkout of a large tree). */
export const LONG_MS = 60 * 60_000;

const META = "alpine.json";

/**
 * The git workspace dir and what sandboxd records about it: alpine.json, the
 * in-progress marker of an unfinished clone/restore, and the private git dirs
 * through which every command that reads the working tree runs.
 *
 * The jobs on top of it live in their own modules: clone/checkout
 * (workspace-clone.ts), status and diff (workspace-views.ts), checkpoint
 * snapshot and restore (workspace-snapshot.ts), export commit and push
 * (workspace-export.ts). The workspace's own `.git/config` is the agent's:
 * whatever reads the working tree or makes commits runs against a private
 * git dir with sandboxd's own config (no filters, hooks, fsmonitor, textconv,
 * external diff or gpg from the workspace can run on the host).
 */
export class Workspace {
  private meta: WorkspaceMeta | null = null;
  private shadowReady = false;

  constructor(
    readonly dir: string,
    /** Private to sandboxd (not visible to the agent under bubblewrap). */
    readonly shadowDir: string,
    readonly git: GitRunner,
    readonly log: Logger,
  ) {}

  get gitDir(): string {
    return join(this.dir, ".git");
  }

  /** .git exists and is a real directory (a gitfile could point anywhere). */
  hasGitDir(): boolean {
    try {
      return lstatSync(this.gitDir).isDirectory();
    } catch {
      // Missing (or the workspace dir itself is not a dir): no git dir.
      return false;
    }
  }

  loadMeta(): WorkspaceMeta | null {
    if (this.meta) return this.meta;
    if (!this.hasGitDir()) return null;
    const text = readSmallFile(join(this.gitDir, META));
    if (text === undefined) return null;
    try {
      const m = JSON.parse(text) as WorkspaceMeta;
      if (typeof m.repo === "string" && typeof m.base_commit === "string" && typeof m.branch === "string") {
        this.meta = m;
        return m;
      }
    } catch (err) {
      this.log.warn("alpine.json is unreadable; treating the workspace as an unfinished clone", {
        error: String(err),
      });
    }
    return null;
  }

  /** Marks a clone/restore in progress: until alpine.json exists it is ours to clear if it never finishes. */
  markInProgress(): void {
    writeFileSync(join(this.gitDir, IN_PROGRESS), "");
  }

  /** Writes alpine.json, which makes the checkout a finished workspace. */
  recordMeta(meta: WorkspaceMeta): void {
    writeFileSync(join(this.gitDir, META), JSON.stringify(meta, null, 2) + "\n");
    rmSync(join(this.gitDir, IN_PROGRESS), { force: true });
    this.meta = meta;
  }

  /** The meta, or sandbox_not_running while no clone/restore finished. */
  requireMeta(): WorkspaceMeta {
    const meta = this.loadMeta();
    if (!meta) throw new AlpineError("sandbox_not_running", "the workspace is not initialised yet");
    return meta;
  }

  /** An unfinished clone/restore of ours: a bare `.git` from `clone --no-checkout`, or marked in progress. */
  private isOursUnfinished(entries: string[]): boolean {
    return (
      (entries.length === 1 && entries[0] === ".git") ||
      (this.hasGitDir() && readSmallFile(join(this.gitDir, IN_PROGRESS)) !== undefined)
    );
  }

  /**
   * Removes a clone that never finished (no alpine.json). Only what is
   * recognisably ours: an empty dir, a bare `.git` from `clone --no-checkout`,
   * or a checkout marked in progress. Anything else is refused, never deleted.
   */
  clearUnfinished(): void {
    const entries = readdirSync(this.dir);
    if (entries.length === 0) return;
    if (!this.isOursUnfinished(entries)) {
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

  /** True when the workspace dir is missing, empty, or an unfinished clone/restore of ours. */
  isFresh(): boolean {
    let entries: string[];
    try {
      entries = readdirSync(this.dir);
    } catch {
      // No workspace dir at all: as fresh as it gets.
      return true;
    }
    if (entries.length === 0) return true;
    if (this.loadMeta()) return false;
    return this.isOursUnfinished(entries);
  }

  /** Drops what is known of the workspace (a restore rebuilds it from nothing). */
  forget(): void {
    this.meta = null;
  }

  /** Empties a workspace this sandboxd was restoring into (after a failed restore). */
  clearRestore(): void {
    this.meta = null;
    try {
      for (const entry of readdirSync(this.dir))
        rmSync(join(this.dir, entry), { recursive: true, force: true });
    } catch (err) {
      // A missing dir is already empty; anything else leaves the next restore to refuse it.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        this.log.warn("could not empty the workspace after a failed restore", { error: String(err) });
    }
  }

  /** For read-only commands on the workspace's own git dir (refs, commits): sandboxd's config only. */
  repoOpts(): { env: Record<string, string>; isolatedConfig: string } {
    this.ensureShadow();
    return { env: { GIT_DIR: this.gitDir }, isolatedConfig: this.shadowDir };
  }

  /** The shadow git dir of the views: sandboxd's config, the workspace's objects as alternate. */
  ensureShadow(): void {
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
   * A private git dir at `dir`: sandboxd's config, the workspace's ignore
   * patterns, and either its own object store with the workspace's objects as
   * an alternate ("private": nothing is written into the workspace) or the
   * workspace's object store itself ("workspace": new objects land there).
   */
  privateRepo(dir: string, objects: "private" | "workspace"): GitEnv {
    if (!this.hasGitDir()) throw new AlpineError("internal_error", "the workspace's .git is missing");
    for (const d of ["objects/info", "refs/heads", "info"])
      mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, "HEAD"), "ref: refs/heads/alpine-private\n");
    writeFileSync(
      join(dir, "config"),
      "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tfilemode = true\n\tsymlinks = true\n\tlogallrefupdates = false\n[gc]\n\tauto = 0\n",
    );
    const exclude = this.ignorePatterns();
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

  /** The workspace's `info/exclude` (ignore patterns only; nothing executable), if it has one. */
  ignorePatterns(): string | undefined {
    return readSmallFile(join(this.gitDir, "info", "exclude"));
  }

  async head(): Promise<string | null> {
    const res = await this.git.run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], this.repoOpts());
    return res.code === 0 ? res.stdout.trim() : null;
  }

  /** HEAD of the workspace: its commit and the branch it points at (null when detached). */
  async currentRef(): Promise<{ ref: string | null; head: string | null }> {
    const [head, sym] = await Promise.all([
      this.head(),
      this.git.run(["symbolic-ref", "--quiet", "HEAD"], this.repoOpts()),
    ]);
    const ref = sym.code === 0 && sym.stdout.trim().startsWith("refs/heads/") ? sym.stdout.trim() : null;
    return { ref, head };
  }

  /** The index of env = HEAD's tree + the whole working tree (tracked, untracked, not ignored); returns its tree. */
  async stageAll(env: GitEnv, head: string): Promise<string> {
    // --reset: an index kept from the last snapshot (the checkpoint git dir keeps one) keeps the
    // stat data of its entries whose blob is HEAD's, so `add` re-hashes only files changed since
    // (a plain read-tree drops all stat data: every checkpoint read the whole work tree). Unlike
    // -m, --reset does not refuse entries that differ from the work tree (they are what `add`
    // reads); the entries are HEAD's either way.
    const reset = await this.git.run(["read-tree", "--reset", head], env);
    if (reset.code !== 0) {
      // A kept index git cannot read: start from nothing (the same entries, without stat data).
      rmSync(env.env.GIT_INDEX_FILE ?? join(env.isolatedConfig, "index"), { force: true });
      await this.git.ok(["read-tree", head], env);
    }
    const add = await this.git.run(["add", "-A", "--", "."], { ...env, timeoutMs: LONG_MS });
    if (add.code !== 0) {
      throw new AlpineError("internal_error", `cannot read the workspace: ${firstLine(add.stderr)}`, {
        stderr: add.stderr.slice(0, 2000),
      });
    }
    return (await this.git.ok(["write-tree"], env)).trim();
  }
}

/** A regular file's text (not a symlink, FIFO or device; at most 1 MiB), else undefined. */
export function readSmallFile(path: string): string | undefined {
  try {
    const st = lstatSync(path);
    if (!st.isFile() || st.size > 1024 * 1024) return undefined;
    return readFileSync(path, "utf8");
  } catch {
    // Missing or unreadable: the same as absent to every caller.
    return undefined;
  }
}
