import { randomBytes } from "node:crypto";
import { copyFileSync, lstatSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import type { DiffFile, DiffResponse, WorkspaceStatus } from "@alpine/core/sandboxd-api";
import { firstLine } from "./git.ts";
import { type NameStatusEntry, parseNameStatus, parseNumstat } from "./git-output.ts";
import type { GitEnv, Workspace } from "./workspace.ts";

/**
 * Status and diff of a workspace the agent controls. git runs against the
 * workspace's private "shadow" git dir (sandboxd's own config: no filters,
 * hooks, fsmonitor, textconv or external diff from the workspace's config can
 * run on the host), the workspace's objects as an alternate, and a throw-away
 * index: the real index is never touched.
 */
export class WorkspaceViews {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly ws: Workspace) {}

  /** Serialises workspace reads (they share the shadow git dir). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    // The caller gets fn's failure through `next`; the queue only orders the reads.
    this.queue = next.catch(() => {});
    return next;
  }

  /**
   * The status of a checkout nobody has touched yet (right after clone):
   * HEAD is the base commit and the work tree is its tree, so nothing needs
   * scanning. Later reads use status().
   */
  async checkoutStatus(): Promise<WorkspaceStatus | null> {
    const meta = this.ws.loadMeta();
    if (!meta) return null;
    const tree = await this.ws.git.run(
      ["rev-parse", "--verify", "--quiet", "--end-of-options", `${meta.base_commit}^{tree}`],
      this.ws.repoOpts(),
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
    const { ws } = this;
    const { git } = ws;
    const meta = ws.loadMeta();
    if (!meta) return null;
    return this.exclusive(async () => {
      const head = await ws.head();
      const branchRes = await git.run(["symbolic-ref", "--quiet", "--short", "HEAD"], ws.repoOpts());
      const branch = branchRes.code === 0 ? branchRes.stdout.trim() : "HEAD";
      return this.withWorktreeIndex(async (env) => {
        const changed = await this.nameStatus(env, meta.base_commit);
        let dirty = true;
        if (head) {
          const d = await git.run(["diff", "--cached", "--quiet", "--no-ext-diff", head, "--"], env);
          dirty = d.code !== 0;
        }
        let ahead = 0;
        if (head) {
          const out = await git.run(
            ["rev-list", "--count", `${meta.base_commit}..${head}`, "--"],
            ws.repoOpts(),
          );
          ahead = Number(out.stdout.trim()) || 0;
        }
        const tree = await git.run(["write-tree"], env);
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

  /** The working tree (untracked files included) against base_commit: files with line counts, and the patch unless `stat`. */
  async diff(stat: boolean): Promise<DiffResponse> {
    const { git } = this.ws;
    const meta = this.ws.requireMeta();
    return this.exclusive(() =>
      this.withWorktreeIndex(async (env) => {
        const changed = await this.nameStatus(env, meta.base_commit);
        const numstat = await git.ok(
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
        const files = changed.map((f): DiffFile => {
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
        const patch = await git.ok(
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

  private async nameStatus(env: GitEnv, base: string): Promise<NameStatusEntry[]> {
    const out = await this.ws.git.ok(
      ["diff", "--cached", "-M", "--name-status", "-z", "--no-ext-diff", base, "--"],
      env,
    );
    return parseNameStatus(out);
  }

  /**
   * Builds a throw-away index holding the whole working tree (tracked and
   * untracked-not-ignored files, deletions) and runs fn with the env to use it.
   */
  private async withWorktreeIndex<T>(fn: (env: GitEnv) => Promise<T>): Promise<T> {
    const { ws } = this;
    if (!ws.hasGitDir()) throw new AlpineError("internal_error", "the workspace's .git is missing");
    ws.ensureShadow();
    const shadow = ws.shadowDir;
    // The workspace's ignore rules (patterns only; nothing executable).
    const exclude = ws.ignorePatterns();
    if (exclude !== undefined) writeFileSync(join(shadow, "info", "exclude"), exclude);
    else rmSync(join(shadow, "info", "exclude"), { force: true });
    const index = join(shadow, `index-${randomBytes(6).toString("hex")}`);
    const env: GitEnv = {
      cwd: ws.dir,
      isolatedConfig: shadow,
      env: {
        GIT_DIR: shadow,
        GIT_WORK_TREE: ws.dir,
        GIT_INDEX_FILE: index,
        GIT_OPTIONAL_LOCKS: "0",
        GIT_CONFIG_NOSYSTEM: "1",
      },
    };
    try {
      // Start from the real index's stat cache so unchanged files are not re-hashed.
      const seeded = seedIndex(join(ws.gitDir, "index"), index);
      let add = seeded ? await ws.git.run(["add", "-A", "--", "."], env) : undefined;
      if (add?.code !== 0) {
        // A split/odd real index: start from HEAD's tree instead.
        rmSync(index, { force: true });
        const head = await ws.head();
        if (head) await ws.git.ok(["read-tree", head], env);
        add = await ws.git.run(["add", "-A", "--", "."], env);
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
      const objects = join(shadow, "objects");
      for (const d of readdirSync(objects)) {
        if (/^[0-9a-f]{2}$/.test(d)) rmSync(join(objects, d), { recursive: true, force: true });
      }
    }
  }
}

/** Copies the workspace's real index (a regular file) to `to`; false when there is none. */
function seedIndex(from: string, to: string): boolean {
  try {
    if (!lstatSync(from).isFile()) return false;
    copyFileSync(from, to);
    return true;
  } catch {
    // No index yet (fresh restore, odd state): the caller builds one from HEAD.
    return false;
  }
}
