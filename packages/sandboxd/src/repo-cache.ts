import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import type { GitCredentials } from "./credentials.ts";
import { firstLine, type GitRunner, type ResolvedRepo } from "./git.ts";
import type { Logger } from "./log.ts";
import { isAlive, sleep } from "./proc.ts";

/** A lock older than this is stale even if its pid looks alive (the pid was reused). */
const STALE_LOCK_MS = 2 * 3600_000;
/** How long a launch waits for another one's fetch before cloning without the cache. */
const LOCK_WAIT_MS = 60 * 60_000;
const STAMP = "alpine-fetched";

export interface CacheUse {
  /** The bare repository the workspace is cloned from. */
  dir: string;
  /** Whether this launch fetched into it (false: it was fresh). */
  fetched: boolean;
}

/**
 * One bare object cache per repository under `root` (the host's
 * `$ALPINE_HOME/cache/repos`), shared by every sandboxd of this host.
 *
 * - Writes (create, fetch) happen under `<key>.lock`, an O_EXCL file naming
 *   its holder; concurrent launches of one repo wait for one fetch instead of
 *   each downloading it.
 * - Reads (a workspace's `clone --shared` from it) take no lock: nothing ever
 *   deletes objects from a cache (sandboxd runs git with gc.auto=0, and
 *   `fetch --prune` only drops refs), so a workspace borrowing objects from it
 *   (objects/info/alternates) can rely on them.
 * - It never holds credentials: fetches get them per command from sandboxd's
 *   credential broker, the URL has none, and no remote is configured.
 */
export class RepoCache {
  constructor(
    private readonly root: string,
    private readonly git: GitRunner,
    private readonly log: Logger,
  ) {}

  /** The cache dir of a repo: a hash of its credential-free URL (or path). */
  pathFor(repo: ResolvedRepo): string {
    const key = createHash("sha256").update(repo.display).digest("hex").slice(0, 32);
    return join(this.root, `${key}.git`);
  }

  /** The caches a workspace's git dir borrows objects from (its objects/info/alternates), if any. */
  borrowedBy(gitDir: string): string[] {
    let text = "";
    try {
      text = readFileSync(join(gitDir, "objects", "info", "alternates"), "utf8");
    } catch {
      // No alternates file: the workspace borrows from no cache.
      return [];
    }
    const out: string[] = [];
    for (const line of text.split("\n")) {
      const objects = resolve(gitDir, "objects", line.trim());
      const dir = dirname(objects);
      if (line.trim() && basename(objects) === "objects" && dirname(dir) === resolve(this.root))
        out.push(dir);
    }
    return out;
  }

  /**
   * Creates the (still empty) cache dir, so bubblewrap can mount it read-only
   * for the agent before the first fetch fills it: the mount shows what is
   * written into it later.
   */
  reserve(repo: ResolvedRepo): string {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const dir = this.pathFor(repo);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /**
   * Brings the repo's cache up to date with the remote and returns it, or
   * null when it cannot be used this time (the clone then goes to the remote
   * itself; never an error of its own). The workspace is then cloned from the
   * cache locally, so the cache must be as new as the remote was when the
   * launch asked (`since`): a fetch that another launch started after that
   * moment is as good as our own, so concurrent launches share one.
   */
  async refresh(
    repo: ResolvedRepo,
    credentials: GitCredentials | undefined,
    since: number,
  ): Promise<CacheUse | null> {
    const dir = this.reserve(repo);
    const t0 = Date.now();
    const release = await acquireLock(`${dir}.lock`, LOCK_WAIT_MS, this.log);
    if (!release) {
      this.log.warn("repo cache is locked too long; cloning without it", { cache: dir });
      return null;
    }
    try {
      const stamp = join(dir, STAMP);
      const fresh = isBareRepo(dir) && readStamp(stamp) >= since;
      if (fresh) {
        this.log.info("repo cache is fresh", { cache: dir, ms: Date.now() - t0 });
        return { dir, fetched: false };
      }
      const creds = credentials ?? repo.urlCredentials;
      const network = {
        isolatedConfig: "/nonexistent",
        timeoutMs: 60 * 60_000,
        credentials: creds && repo.target ? { credentials: creds, target: repo.target } : undefined,
      };
      // Give up on a transfer slower than 1 KB/s for a minute rather than hang.
      const slow = ["-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60"];
      const started = Date.now();
      let res: Awaited<ReturnType<GitRunner["run"]>>;
      if (isBareRepo(dir)) {
        res = await this.git.run(
          [
            ...slow,
            "fetch",
            "--quiet",
            "--prune",
            "--no-write-fetch-head",
            "--",
            repo.url,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
          ],
          { ...network, env: { GIT_DIR: dir } },
        );
      } else {
        // A first clone (its HEAD names the remote's default branch). Whatever an earlier,
        // killed attempt left in the dir goes first; nothing borrows from a cache that never
        // finished.
        emptyDir(dir);
        const args = [...slow, "clone", "--bare", "--quiet"];
        // A local repo goes through git's transport: the cache gets one pack (reading thousands
        // of loose objects costs a checkout seconds here) and shares no file with the repo.
        if (repo.local) args.push("--no-local");
        res = await this.git.run([...args, "--", repo.url, dir], network);
        if (res.code === 0) writeFileSync(join(dir, "alpine-repo"), `${repo.display}\n`);
        else emptyDir(dir);
      }
      if (res.code !== 0) {
        // The clone from the remote will say what is wrong with it.
        this.log.warn("repo cache fetch failed", { cache: dir, error: firstLine(res.stderr) });
        return null;
      }
      writeFileSync(stamp, String(started));
      this.log.info("repo cache fetched", { cache: dir, ms: Date.now() - t0 });
      return { dir, fetched: true };
    } finally {
      release();
    }
  }
}

/** When the last successful fetch into a cache started (epoch ms; 0 when unknown). */
function readStamp(file: string): number {
  try {
    const at = Number(readFileSync(file, "utf8").trim());
    return Number.isFinite(at) ? at : 0;
  } catch {
    // No stamp: never fetched successfully, so the cache is refreshed.
    return 0;
  }
}

/** Removes what is inside a dir, keeping the dir (bubblewrap may have it mounted). */
function emptyDir(dir: string): void {
  for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true });
}

function isBareRepo(dir: string): boolean {
  return existsSync(join(dir, "HEAD")) && existsSync(join(dir, "objects")) && existsSync(join(dir, "refs"));
}

interface LockOwner {
  pid: number;
  host: string;
  at: number;
  nonce: string;
}

function readOwner(file: string): { text: string; owner: LockOwner } | null {
  try {
    const text = readFileSync(file, "utf8");
    return { text, owner: JSON.parse(text) as LockOwner };
  } catch {
    // Released meanwhile, or being written: not known to be stale, so the caller waits and retries.
    return null;
  }
}

function staleOwner(owner: LockOwner): boolean {
  if (Date.now() - owner.at > STALE_LOCK_MS) return true;
  return owner.host === hostname() && !isAlive(owner.pid);
}

/**
 * Takes an exclusive lock file (O_EXCL), waiting up to `waitMs`; returns its
 * release, or null on timeout. A lock whose holder died is broken: renamed
 * away first, so two breakers cannot both think they removed the stale one.
 */
export async function acquireLock(file: string, waitMs: number, log: Logger): Promise<(() => void) | null> {
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    at: Date.now(),
    nonce: Math.random().toString(36).slice(2),
  };
  const mine = JSON.stringify(owner);
  const deadline = Date.now() + waitMs;
  let delay = 25;
  for (;;) {
    try {
      const fd = openSync(file, "wx", 0o600);
      try {
        writeSync(fd, mine);
      } finally {
        closeSync(fd);
      }
      return () => {
        if (readOwner(file)?.text === mine) unlinkSync(file);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const held = readOwner(file);
    if (held && staleOwner(held.owner)) {
      const aside = `${file}.stale-${process.pid}-${owner.nonce}`;
      try {
        renameSync(file, aside);
        if (readOwner(aside)?.text === held.text) {
          log.warn("broke a stale repo cache lock", { lock: file, holder_pid: held.owner.pid });
        } else {
          // Took a fresh lock by mistake (it changed in between): put it back if nobody took its place.
          try {
            linkSync(aside, file);
          } catch {
            // someone holds a newer lock now; the one we moved will not be released by its owner's check
          }
        }
        unlinkSync(aside);
      } catch {
        // gone already: retry
      }
      continue;
    }
    if (Date.now() > deadline) return null;
    await sleep(delay);
    delay = Math.min(delay * 2, 250);
  }
}
