import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { thisHost } from "../context.ts";
import { sandboxDir } from "../paths.ts";
import { PID_FILE, RUNTIME_SUBDIRS } from "./local-sandboxd.ts";

/**
 * The warm pool of the local provider (`sandbox.warm_pool: N`): up to N
 * sandboxd processes started ahead of any launch, each with OpenCode already
 * booted on an empty workspace and no credentials. A launch of a new sandbox
 * claims one and adopts it (POST /v1/adopt, then the usual init); the launch
 * after it refills the pool.
 *
 * On disk, under $ALPINE_HOME:
 *   pool/<id>.json          a runtime nobody has claimed: {id, dir, pid, fingerprint, created_at}
 *   pool/<id>.claimed       claimed by a launch that has not linked it yet (atomic rename)
 *   pool/.lock              held while the pool is trimmed or refilled
 *   sandboxes/<id>/         the runtime's dir (workspace, home, tmp, logs, token, sandboxd.out)
 *   sandboxes/<sandbox-id>  → <id>: the link a launch makes when it adopts the runtime. OpenCode's
 *                           sessions record the workspace's absolute path, so the sandbox keeps
 *                           living (and is resumed from checkpoints) at the runtime's path.
 *
 * Safety: a runtime is claimed by exactly one launch (rename is atomic), is
 * only adopted when its fingerprint (OpenCode binary, sandboxd build,
 * isolation, OpenCode config, …) matches the launch's (one isolated with
 * bubblewrap is claimed before the launch's bubblewrap probe answers: it is
 * never less isolated than what the probe would choose), exits by itself when
 * nobody adopts it (sandboxd's `warm.idle_exit_ms`), and `alpine gc`, every
 * refill and every claim remove runtimes that are dead, stale or in excess.
 */

export interface PoolEntry {
  id: string;
  /** The runtime's dir (sandboxes/<id>). */
  dir: string;
  pid: number;
  fingerprint: string;
  created_at: string;
}

/** A warm runtime nobody adopts stops after this long (and is then cleaned up). */
export const WARM_IDLE_EXIT_MS = 30 * 60_000;
/** Claims older than this whose launch never linked the runtime are orphans. */
const ORPHAN_CLAIM_MS = 10 * 60_000;

export function poolDir(home: string): string {
  return join(home, "pool");
}

/** A stable hash of everything a warm runtime was started with (no secret is stored, only this hash). */
export function fingerprintOf(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex");
}

export function newPoolId(): string {
  return `warm-${randomBytes(8).toString("hex")}`;
}

function readEntry(file: string): PoolEntry | null {
  try {
    const e = JSON.parse(readFileSync(file, "utf8")) as PoolEntry;
    if (typeof e.id === "string" && typeof e.dir === "string" && typeof e.pid === "number") return e;
  } catch {
    // half written or gone
  }
  return null;
}

/** The names in a dir; none when it does not exist (yet). */
function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/** Unclaimed entries, oldest first. */
export function listPool(home: string): PoolEntry[] {
  const dir = poolDir(home);
  return namesIn(dir)
    .filter((n) => n.endsWith(".json"))
    .map((n) => readEntry(join(dir, n)))
    .filter((e): e is PoolEntry => e !== null)
    .sort((a, b) => a.created_at.localeCompare(b.created_at));
}

export function writeEntry(home: string, entry: PoolEntry): void {
  const dir = poolDir(home);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${entry.id}.tmp`);
  writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
  renameSync(tmp, join(dir, `${entry.id}.json`));
}

/** Whether the entry's sandboxd is alive and is the one working in its dir (a reused pid is not). */
export function entryAlive(entry: PoolEntry): boolean {
  if (!thisHost.isProcessAlive(entry.pid)) return false;
  try {
    const cwd = readlinkSync(`/proc/${entry.pid}/cwd`).replace(/ \(deleted\)$/, "");
    return cwd === entry.dir && readFileSync(`/proc/${entry.pid}/cmdline`, "utf8").includes("sandboxd");
  } catch {
    return true; // no /proc: trust the pid
  }
}

/** Whether a runtime is about to stop by itself (not worth adopting). */
export function expiring(entry: PoolEntry): boolean {
  return Date.now() - Date.parse(entry.created_at) > WARM_IDLE_EXIT_MS - 60_000;
}

/**
 * Takes an unclaimed runtime out of the pool (pool/<id>.json → .claimed).
 * The rename is atomic: of the launches and pool maintainers that try, exactly
 * one gets it.
 */
export function take(home: string, entry: PoolEntry): boolean {
  try {
    renameSync(join(poolDir(home), `${entry.id}.json`), join(poolDir(home), `${entry.id}.claimed`));
    return true;
  } catch {
    return false; // gone, or taken by another process first
  }
}

/**
 * Takes an unclaimed, live runtime with this fingerprint for sandbox
 * `sandboxId` and links sandboxes/<sandboxId> to it; null when the pool has
 * none. Dead, stale or expiring ones are left to the pool's maintenance.
 */
export function claim(home: string, sandboxId: string, fingerprint: string): PoolEntry | null {
  const link = sandboxDir(home, sandboxId);
  for (const entry of listPool(home)) {
    if (entry.fingerprint !== fingerprint || expiring(entry) || !entryAlive(entry)) continue;
    const file = join(poolDir(home), `${entry.id}.json`);
    const claimed = join(poolDir(home), `${entry.id}.claimed`);
    if (!take(home, entry)) continue;
    try {
      mkdirSync(dirname(link), { recursive: true, mode: 0o700 });
      // Relative, so the alpine home can be moved as a whole.
      symlinkSync(basename(entry.dir), link);
    } catch {
      // The sandbox got a dir meanwhile (cannot happen under its launch lease): give the runtime back.
      renameSync(claimed, file);
      return null;
    }
    unlinkSync(claimed);
    return entry;
  }
  return null;
}

/** The real dir of a sandbox: sandboxes/<id>, or the warm runtime it links to. */
export function resolveSandboxDir(home: string, sandboxId: string): string {
  const path = sandboxDir(home, sandboxId);
  try {
    if (lstatSync(path).isSymbolicLink()) return resolve(dirname(path), readlinkSync(path));
  } catch {
    // does not exist yet
  }
  return path;
}

/** Removes a runtime's dir and pool files (its process must be stopped first). */
export function removeRuntime(home: string, entry: Pick<PoolEntry, "id" | "dir">): void {
  for (const suffix of [".json", ".claimed"])
    rmSync(join(poolDir(home), `${entry.id}${suffix}`), { force: true });
  // Only a dir that is a pool runtime's own (never a sandbox's).
  if (basename(entry.dir) === entry.id && entry.id.startsWith("warm-")) {
    rmSync(entry.dir, { recursive: true, force: true });
  }
}

/** Claims whose launch died before linking the runtime (nothing links to its dir). */
export function orphanClaims(home: string): PoolEntry[] {
  const dir = poolDir(home);
  const linked = new Set<string>();
  for (const n of namesIn(join(home, "sandboxes"))) {
    const p = join(home, "sandboxes", n);
    try {
      if (lstatSync(p).isSymbolicLink()) linked.add(readlinkSync(p));
    } catch {
      // raced with a removal
    }
  }
  const out: PoolEntry[] = [];
  for (const n of namesIn(dir).filter((x) => x.endsWith(".claimed"))) {
    const file = join(dir, n);
    const entry = readEntry(file);
    if (!entry) continue;
    if (linked.has(entry.id)) {
      rmSync(file, { force: true }); // linked: the launch only failed to drop its marker
      continue;
    }
    if (Date.now() - statSync(file).mtimeMs > ORPHAN_CLAIM_MS) out.push(entry);
  }
  return out;
}

/** An exclusive lock file for pool maintenance; null when another process holds it. */
export function tryPoolLock(home: string): (() => void) | null {
  const dir = poolDir(home);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, ".lock");
  const mine = `${process.pid}`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, mine);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(file, "utf8") === mine) unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    // A holder that died leaves its lock: take it over once.
    let holder = Number.NaN;
    try {
      holder = Number(readFileSync(file, "utf8"));
    } catch {
      // being written
    }
    if (Number.isInteger(holder) && holder > 0 && !thisHost.isProcessAlive(holder)) {
      rmSync(file, { force: true });
      continue;
    }
    return null;
  }
  return null;
}

/** The listening line a warm sandboxd wrote into its dir (it has no parent reading its stdout). */
export function listeningOf(dir: string): { port: number; pid: number } | null {
  try {
    const line = readFileSync(join(dir, "sandboxd.out"), "utf8").split("\n")[0] ?? "";
    const msg = JSON.parse(line) as { event?: string; port?: number; pid?: number };
    if (msg.event === "listening" && typeof msg.port === "number" && typeof msg.pid === "number")
      return { port: msg.port, pid: msg.pid };
  } catch {
    // not yet
  }
  return null;
}

/**
 * Starts one warm sandboxd, detached, its first stdout line going to
 * <dir>/sandboxd.out; resolves once its config was handed over on stdin, so
 * the calling CLI can exit at once.
 */
export async function spawnWarm(opts: {
  home: string;
  id: string;
  entry: string;
  config: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  fingerprint: string;
}): Promise<PoolEntry> {
  const dir = sandboxDir(opts.home, opts.id);
  for (const sub of RUNTIME_SUBDIRS) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  const out = openSync(join(dir, "sandboxd.out"), "w", 0o600);
  const child = spawn(process.execPath, [opts.entry], {
    cwd: dir,
    detached: true,
    stdio: ["pipe", out, "ignore"],
    env: opts.env,
  });
  closeSync(out);
  if (!child.pid) throw new Error("cannot start a warm sandboxd");
  writeFileSync(join(dir, PID_FILE), String(child.pid), { mode: 0o600 });
  const entry: PoolEntry = {
    id: opts.id,
    dir,
    pid: child.pid,
    fingerprint: opts.fingerprint,
    created_at: new Date().toISOString(),
  };
  writeEntry(opts.home, entry);
  // Its config (OpenCode's config may hold a key) goes over stdin, never argv or disk.
  await new Promise<void>((resolveWrite) =>
    child.stdin!.end(JSON.stringify(opts.config), () => resolveWrite()),
  );
  child.unref();
  return entry;
}
