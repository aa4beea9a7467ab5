import { randomBytes } from "node:crypto";
import {
  copyFileSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { AlpineError } from "../../core/src/errors.ts";
import type { DiffResponse } from "../../core/src/sandboxd-api.ts";
import type { GitCredentials } from "./credentials.ts";
import { checkRef, cloneFailureReason, firstLine, type GitRunner, type ResolvedRepo } from "./git.ts";
import type { Logger } from "./log.ts";

/** Recorded in <workspace>/.git/alpine.json once the checkout exists (no secrets). */
export interface WorkspaceMeta {
  repo: string;
  ref: string | null;
  branch: string;
  base_commit: string;
  created_at: string;
}

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
const IN_PROGRESS = "alpine-clone-in-progress";

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
  ): Promise<WorkspaceMeta> {
    if (ref !== undefined) checkRef(ref);
    mkdirSync(this.dir, { recursive: true });
    this.clearUnfinished();

    const creds = credentials ?? repo.urlCredentials;
    // Give up on a transfer slower than 1 KB/s for a minute rather than hang.
    const args = ["-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60"];
    args.push("clone", "--no-checkout", "--origin", "origin");
    if (repo.local) args.push("--no-hardlinks");
    args.push("--", repo.url, this.dir);
    const res = await this.git.run(args, {
      cwd: dirname(this.dir),
      timeoutMs: 60 * 60_000,
      credentials: creds && repo.target ? { credentials: creds, target: repo.target } : undefined,
    });
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
