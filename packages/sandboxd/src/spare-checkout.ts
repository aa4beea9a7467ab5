import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { firstLine, type GitRunner } from "./git.ts";
import type { Logger } from "./log.ts";
import { isAlive } from "./proc.ts";

/** Marks a checkout as not yet a finished workspace (workspace.ts clears such a clone). */
export const IN_PROGRESS = "alpine-clone-in-progress";
/** A preparation lock older than this is stale whatever its pid says. */
const STALE_LOCK_MS = 30 * 60_000;

/**
 * One spare checkout per cached repository, for launches of repos with many
 * files: writing a work tree of thousands of files is the slowest part of a
 * warm launch (as long as a whole clone on some file systems), and the only
 * part that grows with the repo once its objects are cached.
 *
 * After a launch of such a repo, sandboxd prepares `<cache>.spare` beside the
 * repo's bare cache: a self-contained clone of the cache (objects copied, no
 * alternates, no hard links, so a workspace made from it depends on nothing
 * else), checked out at the commit just launched. The next launch of that repo
 * claims it by renaming it (one launch wins), moves its entries into its own
 * workspace directory (renames on one file system: independent of the number
 * of files; the workspace directory itself stays, bubblewrap may have it
 * bind-mounted), fetches what the cache has beyond it, and checks out its
 * branch, which rewrites only the files that differ. Anything that goes wrong
 * is a plain clone from the cache instead.
 *
 * Costs: one work tree and one copy of the repo's objects on disk per repo,
 * and the CPU and writes of one checkout after a launch (off its path).
 */
export class SpareCheckouts {
  constructor(
    private readonly git: GitRunner,
    private readonly log: Logger,
    /** Work trees with fewer files get no spare (their checkout is already quick). */
    private readonly minFiles: number,
  ) {}

  /** The spare of a bare cache dir `<key>.git`. */
  pathFor(cacheDir: string): string {
    return join(dirname(cacheDir), `${basename(cacheDir).replace(/\.git$/, "")}.spare`);
  }

  /**
   * Moves the repo's spare (if there is one) into `workspaceDir`, which must be
   * empty; `.git` first, and it carries the in-progress mark, so a move that
   * stops half-way leaves a clone the workspace recognises as its own to clear.
   * Returns whether the workspace now holds the spare.
   */
  claim(cacheDir: string, workspaceDir: string): boolean {
    const spare = this.pathFor(cacheDir);
    const claimed = `${spare}.claimed-${process.pid}-${randomBytes(4).toString("hex")}`;
    try {
      renameSync(spare, claimed);
    } catch {
      return false; // none (or another launch took it)
    }
    try {
      const entries = readdirSync(claimed).sort((a, b) => (a === ".git" ? -1 : b === ".git" ? 1 : 0));
      if (entries[0] !== ".git" || !existsSync(join(claimed, ".git", IN_PROGRESS))) {
        throw new Error("not a spare checkout");
      }
      for (const entry of entries) renameSync(join(claimed, entry), join(workspaceDir, entry));
      return true;
    } catch (err) {
      this.log.warn("spare checkout not usable", { error: String((err as Error).message ?? err) });
      return false;
    } finally {
      rmSync(claimed, { recursive: true, force: true });
    }
  }

  /**
   * Prepares the repo's spare at `commit` unless the work tree is small, a
   * spare exists, or another sandboxd is preparing one. Never throws.
   */
  async prepare(cacheDir: string, commit: string, files: number): Promise<void> {
    if (files < this.minFiles) return;
    const spare = this.pathFor(cacheDir);
    if (existsSync(spare)) return;
    const release = tryLock(`${spare}.lock`);
    if (!release) return;
    // Another sandboxd may have finished one between the look above and the lock.
    if (existsSync(spare)) return release();
    const tmp = `${spare}.tmp-${process.pid}`;
    const t0 = Date.now();
    this.log.info("preparing a spare checkout", { spare, files });
    try {
      this.clearLeftovers(spare);
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(dirname(tmp), { recursive: true });
      const clone = await this.git.run(
        ["clone", "--quiet", "--no-checkout", "--no-hardlinks", "--", cacheDir, tmp],
        { timeoutMs: 30 * 60_000 },
      );
      if (clone.code !== 0) throw new Error(firstLine(clone.stderr));
      writeFileSync(join(tmp, ".git", IN_PROGRESS), "");
      const checkout = await this.git.run(["checkout", "--quiet", "--detach", commit, "--"], {
        env: { GIT_DIR: join(tmp, ".git"), GIT_WORK_TREE: tmp },
        cwd: tmp,
        timeoutMs: 30 * 60_000,
      });
      if (checkout.code !== 0) throw new Error(firstLine(checkout.stderr));
      renameSync(tmp, spare);
      this.log.info("spare checkout prepared", { spare, files, ms: Date.now() - t0 });
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      this.log.warn("spare checkout not prepared", { error: String((err as Error).message ?? err) });
    } finally {
      release();
    }
  }

  /** What a sandboxd that died mid-way left of this repo's spares (a dead pid in the name). */
  private clearLeftovers(spare: string): void {
    const prefix = basename(spare);
    for (const entry of readdirSync(dirname(spare))) {
      const m = entry.startsWith(prefix) ? /\.(?:tmp|claimed)-(\d+)(?:-[0-9a-f]+)?$/.exec(entry) : null;
      if (m && !isAlive(Number(m[1]))) rmSync(join(dirname(spare), entry), { recursive: true, force: true });
    }
  }
}

/** The number of entries in a git index (its header), or 0 when unreadable. */
export function indexEntries(gitDir: string): number {
  try {
    const fd = openSync(join(gitDir, "index"), "r");
    try {
      const header = Buffer.alloc(12);
      const n = readSync(fd, header, 0, header.length, 0);
      if (n < 12 || header.toString("latin1", 0, 4) !== "DIRC") return 0;
      return header.readUInt32BE(8);
    } finally {
      closeSync(fd);
    }
  } catch {
    // No or unreadable index: counted as no files (no spare is prepared).
    return 0;
  }
}

/** An O_EXCL lock file naming its holder; a stale one (dead pid, or too old) is taken over. */
function tryLock(file: string): (() => void) | null {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, JSON.stringify({ pid: process.pid, at: Date.now() }));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch {
      try {
        const owner = JSON.parse(readFileSync(file, "utf8")) as { pid: number; at: number };
        const stale = !isAlive(owner.pid) || Date.now() - owner.at > STALE_LOCK_MS;
        if (!stale) return null;
      } catch {
        // unreadable: written half-way by a holder that died, or just created; judge by age
        try {
          if (Date.now() - statSync(file).mtimeMs < 60_000) return null;
        } catch {
          continue; // gone meanwhile: try again
        }
      }
      rmSync(file, { force: true });
    }
  }
  return null;
}
