import { spawn } from "node:child_process";
import { constants, createReadStream, mkdirSync, rmSync } from "node:fs";
import { type FileHandle, lstat, mkdir, open, readdir, readlink, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import { AlpineError } from "@alpine/core/errors";
import { type Hashed, writeHashed } from "./files.ts";
import { sleep } from "./proc.ts";

/*
 * OpenCode's data dir ($XDG_DATA_HOME/opencode) in a checkpoint. The home dir
 * is writable by the agent while sandboxd reads it on the host, so it is
 * copied with a walker that never follows a symlink, not even in a parent
 * directory swapped in mid-copy: every directory is opened with O_NOFOLLOW and
 * its entries are reached through /proc/self/fd/<fd>/<name> (Linux). Symlinks
 * are copied as links, regular files by content, anything else is skipped.
 * The private copy is then tarred (GNU tar, never -h) and gzipped.
 */

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

/** SQLite database files: copied together, consistently (see copyDatabase). */
export const DB_FILES = ["opencode.db", "opencode.db-wal", "opencode.db-shm"] as const;

/**
 * Top-level entries of the data dir left out of a checkpoint: the model
 * credentials (auth.json, written again from sandboxd's config at start) and
 * what OpenCode re-creates (log/: its own log; bin/: downloaded tools). The
 * database files are copied separately. `auth.json` is left out at any depth.
 */
const SKIP_TOP = new Set(["auth.json", "log", "bin", ...DB_FILES, "opencode.db-journal"]);

function skipEntry(rel: string, name: string): boolean {
  if (name === "auth.json") return true;
  return !rel.includes("/") && SKIP_TOP.has(rel);
}

const fdPath = (fh: FileHandle, name?: string) =>
  `/proc/self/fd/${fh.fd}${name === undefined ? "" : `/${name}`}`;

/** Opens root/…/parts as directories, none of the parts a symlink (root comes from sandboxd's config); null when one is missing. */
async function openDirChain(root: string, parts: string[]): Promise<FileHandle | null> {
  let dir = await open(root, O_RDONLY | O_DIRECTORY);
  for (const part of parts) {
    let next: FileHandle;
    try {
      next = await open(fdPath(dir, part), DIR_FLAGS);
    } catch (err) {
      await dir.close();
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return null;
      throw new AlpineError(
        "checkpoint_failed",
        `OpenCode's data dir is not a plain directory (${part}: ${code})`,
        {
          path: join(root, ...parts),
        },
      );
    }
    await dir.close();
    dir = next;
  }
  return dir;
}

async function copyFileNoFollow(src: string, dst: string): Promise<boolean> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: a FIFO swapped in after lstat must not hang the copy.
    fh = await open(src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return false; // vanished or became a symlink
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return false;
    const out = await open(dst, "wx", st.mode & 0o777);
    try {
      const buf = Buffer.allocUnsafe(1024 * 1024);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        await out.write(buf, 0, bytesRead);
      }
    } finally {
      await out.close();
    }
    return true;
  } finally {
    await fh.close();
  }
}

async function copyTree(dir: FileHandle, dst: string, rel: string): Promise<void> {
  await mkdir(dst, { recursive: true, mode: 0o700 });
  let names: string[];
  try {
    names = await readdir(fdPath(dir));
  } catch {
    // Removed by OpenCode meanwhile (a live data dir): nothing left to copy here.
    return;
  }
  for (const name of names.sort()) {
    const relName = rel ? `${rel}/${name}` : name;
    if (skipEntry(relName, name)) continue;
    const src = fdPath(dir, name);
    // An entry removed between readdir and lstat (OpenCode works meanwhile) is skipped.
    const st = await lstat(src).catch(() => null);
    if (!st) continue;
    if (st.isSymbolicLink()) {
      // Removed or replaced meanwhile: skipped like an entry that is gone.
      const target = await readlink(src).catch(() => null);
      if (target !== null) await symlink(target, join(dst, name));
    } else if (st.isDirectory()) {
      let sub: FileHandle;
      try {
        sub = await open(src, DIR_FLAGS);
      } catch {
        continue; // replaced by a symlink or removed meanwhile
      }
      try {
        await copyTree(sub, join(dst, name), relName);
      } finally {
        await sub.close();
      }
    } else if (st.isFile()) {
      await copyFileNoFollow(src, join(dst, name));
    }
  }
}

/** Identity of the database as far as a WAL checkpoint or reset would change it. */
async function dbState(dir: FileHandle): Promise<string> {
  const parts: string[] = [];
  // No database (yet): "-" is its identity, so one appearing mid-copy changes the state.
  const db = await lstat(fdPath(dir, "opencode.db")).catch(() => null);
  parts.push(db ? `${db.ino}:${db.size}:${db.mtimeMs}:${db.ctimeMs}` : "-");
  // The WAL header (32 bytes) holds the checkpoint sequence and salts: they change on a WAL reset.
  let header = "-";
  try {
    const fh = await open(fdPath(dir, "opencode.db-wal"), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    try {
      const buf = Buffer.alloc(32);
      const { bytesRead } = await fh.read(buf, 0, 32, 0);
      const st = await fh.stat();
      header = `${st.ino}:${buf.subarray(0, bytesRead).toString("hex")}`;
    } finally {
      await fh.close();
    }
  } catch {
    // no WAL
  }
  parts.push(header);
  return parts.join("|");
}

/**
 * Copies opencode.db with its -wal and -shm so that the copy opens as one
 * consistent database: the main file first, then the WAL (frames appended
 * meanwhile are either complete, or ignored by SQLite's checksums), and only
 * if neither a WAL checkpoint (main file changed) nor a WAL reset (header
 * changed) happened during the copy; else it tries again. While the agent is
 * idle nothing writes and the first try holds; while it is busy a retry is
 * rarely needed (checkpoints happen every ~1000 pages of WAL).
 */
async function copyDatabase(dir: FileHandle, dst: string): Promise<number> {
  for (let attempt = 1; attempt <= 20; attempt++) {
    const before = await dbState(dir);
    for (const f of DB_FILES) rmSync(join(dst, f), { force: true });
    for (const f of DB_FILES) await copyFileNoFollow(fdPath(dir, f), join(dst, f));
    if ((await dbState(dir)) === before) return attempt;
    await sleep(25 * attempt);
  }
  throw new AlpineError(
    "checkpoint_failed",
    "OpenCode's session database kept changing while it was copied; try again",
    {},
  );
}

/**
 * Archives `<home>/.local/share/opencode` (without auth.json and re-creatable
 * dirs) as a .tar.gz at `out` via a private copy in `staging`.
 */
export async function packOpencodeData(
  home: string,
  staging: string,
  out: string,
): Promise<Hashed & { db_copy_attempts: number }> {
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  const dir = await openDirChain(home, [".local", "share", "opencode"]);
  let attempts = 0;
  if (dir) {
    try {
      await copyTree(dir, staging, "");
      attempts = await copyDatabase(dir, staging);
    } finally {
      await dir.close();
    }
  }
  const tar = spawn(
    "tar",
    [
      "--create",
      "--file=-",
      "--format=posix",
      "--numeric-owner",
      "--owner=0",
      "--group=0",
      "--sort=name",
      "--directory",
      staging,
      ".",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  tar.stderr.on("data", (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => tar.once("close", (code) => r(code)));
  const gzip = createGzip({ level: 6 });
  const written = writeHashed(tar.stdout.pipe(gzip), out);
  const [code, hashed] = await Promise.all([exited, written.catch((e: unknown) => e as Error)]);
  if (hashed instanceof Error || code !== 0) {
    rmSync(out, { force: true });
    throw new AlpineError(
      "checkpoint_failed",
      `cannot archive OpenCode's data: ${stderr.trim() || String(hashed)}`,
      {},
    );
  }
  return { ...hashed, db_copy_attempts: attempts };
}

/**
 * Replaces the contents of `<home>/.local/share/opencode` (except auth.json)
 * with the archive's. The archive came from packOpencodeData: files, dirs and
 * symlinks only; tar refuses members with `..` or absolute names.
 */
export async function unpackOpencodeData(home: string, archive: string): Promise<void> {
  const parts = [".local", "share", "opencode"];
  let path = home;
  for (const p of parts) {
    path = join(path, p);
    // Missing is fine (mkdir makes it); anything but a dir is replaced by one.
    const st = await lstat(path).catch(() => null);
    if (st && !st.isDirectory()) await rm(path, { force: true });
    await mkdir(path, { recursive: true, mode: 0o700 });
  }
  for (const name of await readdir(path)) {
    if (name !== "auth.json") await rm(join(path, name), { recursive: true, force: true });
  }
  const tar = spawn(
    "tar",
    ["--extract", "--file=-", "--no-same-owner", "--no-overwrite-dir", "--directory", path],
    { stdio: ["pipe", "ignore", "pipe"] },
  );
  let stderr = "";
  tar.stderr.on("data", (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => tar.once("close", (code) => r(code)));
  const fed = pipeline(createReadStream(archive), createGunzip(), tar.stdin).catch(
    (e: unknown) => e as Error,
  );
  const [code, fedResult] = await Promise.all([exited, fed]);
  // tar may stop reading at the archive's end marker, so the rest of the stream meets a closed
  // pipe: not a failure when tar itself succeeded (the archive's sha256 was verified before).
  const closedEarly =
    fedResult instanceof Error &&
    ["EPIPE", "ERR_STREAM_PREMATURE_CLOSE", "ERR_STREAM_DESTROYED"].includes(
      (fedResult as NodeJS.ErrnoException).code ?? "",
    );
  const fedErr = closedEarly && code === 0 ? undefined : fedResult;
  if (code !== 0 || fedErr instanceof Error) {
    throw new AlpineError(
      "checkpoint_checksum_mismatch",
      `opencode-data.tar.gz cannot be unpacked: ${stderr.trim() || String(fedErr)}`,
      { artifact: "opencode-data.tar.gz" },
    );
  }
}
