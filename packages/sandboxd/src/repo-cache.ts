import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { GitCredentials } from "./credentials.ts";
import { firstLine, type GitRunner, type ResolvedRepo } from "./git.ts";
import type { Logger } from "./log.ts";
import { isAlive, sleep } from "./proc.ts";

/** A cache fetched this recently is used as it is: the clone itself fetches what is newer. */
const FRESH_MS = 5 * 60_000;
/** A lock older than this is stale even if its pid looks alive (the pid was reused). */
const STALE_LOCK_MS = 2 * 3600_000;
/** How long a launch waits for another one's fetch before cloning without the cache. */
const LOCK_WAIT_MS = 60 * 60_000;
const STAMP = "alpine-fetched";

export interface CacheUse {
  /** The bare repository to pass to `git clone --reference`. */
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
 * - Reads (`clone --reference`) take no lock: nothing ever deletes objects
 *   from a cache (sandboxd runs git with gc.auto=0, and `fetch --prune` only
 *   drops refs), so a workspace borrowing objects from it can rely on them.
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
   * Brings the repo's cache up to date (or leaves it when fetched in the last
   * few minutes) and returns it, or null when it cannot be used this time
   * (the clone then runs without it; never an error of its own).
   */
  async refresh(repo: ResolvedRepo, credentials: GitCredentials | undefined): Promise<CacheUse | null> {
    const dir = this.reserve(repo);
    const t0 = Date.now();
    const release = await acquireLock(`${dir}.lock`, LOCK_WAIT_MS, this.log);
    if (!release) {
      this.log.warn("repo cache is locked too long; cloning without it", { cache: dir });
      return null;
    }
    try {
      if (!isBareRepo(dir)) {
        const init = await this.git.run(["init", "--bare", "--quiet", "--", dir], {
          isolatedConfig: "/nonexistent",
        });
        if (init.code !== 0) {
          this.log.warn("cannot create the repo cache", { cache: dir, stderr: init.stderr.slice(0, 500) });
          return null;
        }
        writeFileSync(join(dir, "alpine-repo"), `${repo.display}\n`);
      }
      const stamp = join(dir, STAMP);
      if (existsSync(stamp) && Date.now() - statSync(stamp).mtimeMs < FRESH_MS) {
        this.log.info("repo cache is fresh", { cache: dir, ms: Date.now() - t0 });
        return { dir, fetched: false };
      }
      const creds = credentials ?? repo.urlCredentials;
      const res = await this.git.run(
        [
          "-c",
          "http.lowSpeedLimit=1000",
          "-c",
          "http.lowSpeedTime=60",
          "fetch",
          "--quiet",
          "--prune",
          "--no-write-fetch-head",
          "--",
          repo.url,
          "+refs/heads/*:refs/heads/*",
          "+refs/tags/*:refs/tags/*",
        ],
        {
          env: { GIT_DIR: dir },
          isolatedConfig: "/nonexistent",
          timeoutMs: 60 * 60_000,
          credentials: creds && repo.target ? { credentials: creds, target: repo.target } : undefined,
        },
      );
      if (res.code !== 0) {
        // The clone will say what is wrong with the remote; a cache from earlier still helps it.
        this.log.warn("repo cache fetch failed", { cache: dir, error: firstLine(res.stderr) });
        return hasObjects(dir) ? { dir, fetched: false } : null;
      }
      const now = new Date();
      if (existsSync(stamp)) utimesSync(stamp, now, now);
      else writeFileSync(stamp, "");
      this.log.info("repo cache fetched", { cache: dir, ms: Date.now() - t0 });
      return { dir, fetched: true };
    } finally {
      release();
    }
  }
}

function isBareRepo(dir: string): boolean {
  return existsSync(join(dir, "HEAD")) && existsSync(join(dir, "objects")) && existsSync(join(dir, "refs"));
}

function hasObjects(dir: string): boolean {
  return isBareRepo(dir) && existsSync(join(dir, "objects", "pack"));
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
