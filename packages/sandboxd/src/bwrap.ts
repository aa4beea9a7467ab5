import { existsSync, lstatSync, readlinkSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, resolve, sep } from "node:path";
import { ETC_SECRETS, SYSTEM_DIRS } from "@alpine/core/confinement";

/**
 * What OpenCode sees under bubblewrap: an allow-list. Nothing of the host is
 * visible unless it is named here; the system's runtime dirs (SYSTEM_DIRS,
 * /etc without ETC_SECRETS) and `readOnly` read-only, `workspace`, `home` and
 * `tmp` (on /tmp) read-write, its own /proc and a minimal /dev.
 */
export interface BwrapLayout {
  workspace: string;
  home: string;
  /** Host dir mounted on /tmp inside. */
  tmp: string;
  /**
   * More host paths visible read-only: the OpenCode binary, tools outside the
   * system dirs, a repo's object cache, paths the user granted
   * (`sandbox.read_only_paths`). Missing ones are skipped.
   */
  readOnly: string[];
  /**
   * Paths hidden even when they lie under something visible (a user's grant
   * of a dir holding credentials): an empty read-only tmpfs over a dir,
   * /dev/null over a file. A mask under nothing visible costs nothing.
   */
  mask: string[];
  /** More bwrap arguments, placed after the mounts and before `--chdir` (e.g. `--unshare-net` and its socket dir). */
  extraArgs?: string[];
}

function isUnder(path: string, parent: string): boolean {
  return path === parent || path.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

function depth(path: string): number {
  return path === "/" ? 0 : path.split("/").length - 1;
}

const lstat = (p: string) => lstatSync(p, { throwIfNoEntry: false });

function real(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null; // missing or unreadable: nothing to show
  }
}

type Op = { args: string[]; dest: string; order: number; mask?: "dir" };

/** The system dirs as they are on this host: dirs bound read-only, symlinks recreated. */
function systemOps(next: () => number): Op[] {
  const ops: Op[] = [];
  for (const dir of SYSTEM_DIRS) {
    const st = lstat(dir);
    if (!st) continue;
    if (st.isSymbolicLink())
      ops.push({ args: ["--symlink", readlinkSync(dir), dir], dest: dir, order: next() });
    else if (st.isDirectory()) ops.push({ args: ["--ro-bind", dir, dir], dest: dir, order: next() });
  }
  // /etc/resolv.conf is often a link into /run (systemd-resolved), which stays hidden: its target is
  // bound where the link points, so name resolution works without the rest of /run.
  const resolv = lstat("/etc/resolv.conf");
  if (resolv?.isSymbolicLink()) {
    const target = real("/etc/resolv.conf");
    if (target && !SYSTEM_DIRS.some((d) => isUnder(target, d)))
      ops.push({ args: ["--ro-bind", target, target], dest: target, order: next() });
  }
  return ops;
}

/** Hides `path` (resolved) if it exists: a read-only empty tmpfs over a dir, /dev/null over anything else. */
function maskOp(path: string, next: () => number): Op | null {
  const p = real(path);
  if (!p || p === "/") return null;
  const st = lstat(p);
  if (!st) return null;
  if (st.isDirectory()) return { args: ["--tmpfs", p], dest: p, order: next(), mask: "dir" };
  return { args: ["--ro-bind", "/dev/null", p], dest: p, order: next() };
}

/**
 * bwrap arguments (everything before `--` and the command). The root is an
 * empty tmpfs, read-only once every mount is in place. Mounts are ordered
 * parents first, so a bind inside a masked path or inside /tmp lands on the
 * tmpfs/tmp bind (bwrap creates the mount point there) instead of being
 * hidden by it; masks end up read-only after the binds inside them exist.
 */
export function bwrapArgs(layout: BwrapLayout): string[] {
  let order = 0;
  const next = () => order++;
  const ops: Op[] = systemOps(next);
  const visible: string[] = SYSTEM_DIRS.filter((d) => lstat(d)?.isDirectory());
  const tmp = "/tmp";
  for (const raw of layout.readOnly) {
    if (!isAbsolute(raw)) continue;
    const p = resolve(raw);
    // Bound even inside another grant: a mask there (alpine's home) must not hide it. A host path
    // under /tmp lands on the sandbox's own /tmp like any other.
    if (p === "/" || p === tmp || !existsSync(p) || SYSTEM_DIRS.some((d) => isUnder(p, d))) continue;
    ops.push({ args: ["--ro-bind", p, p], dest: p, order: next() });
    visible.push(p);
  }
  // Only under something visible: elsewhere the path is not there to hide.
  for (const m of [...ETC_SECRETS, ...layout.mask]) {
    const op = maskOp(resolve(m), next);
    if (op && visible.some((v) => isUnder(op.dest, v))) ops.push(op);
  }
  ops.push({ args: ["--bind", layout.tmp, tmp], dest: tmp, order: next() });
  ops.push({ args: ["--bind", layout.home, layout.home], dest: layout.home, order: next() });
  ops.push({ args: ["--bind", layout.workspace, layout.workspace], dest: layout.workspace, order: next() });
  ops.sort((a, b) => depth(a.dest) - depth(b.dest) || a.order - b.order);
  const remounts = ops.filter((o) => o.mask === "dir").flatMap((o) => ["--remount-ro", o.dest]);
  return [
    ...ops.flatMap((o) => o.args),
    ...remounts,
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--remount-ro",
    "/",
    "--unshare-pid",
    "--die-with-parent",
    "--new-session",
    ...(layout.extraArgs ?? []),
    "--chdir",
    layout.workspace,
  ];
}

/**
 * What the agent can see, in a few words per path (for `status` and the
 * launch log): the visible host paths, read-only or read-write.
 */
export function visiblePaths(layout: BwrapLayout): { read_only: string[]; read_write: string[] } {
  const readOnly = SYSTEM_DIRS.filter((d) => lstat(d)?.isDirectory()) as string[];
  for (const raw of layout.readOnly) {
    const p = resolve(raw);
    if (isAbsolute(raw) && existsSync(p) && !readOnly.some((v) => isUnder(p, v))) readOnly.push(p);
  }
  return { read_only: readOnly, read_write: [layout.workspace, layout.home, `/tmp (${layout.tmp})`] };
}

/** The dir of a tool's install (`<prefix>/bin/<tool>` → `<prefix>`), if it is a safe thing to show. */
export function installPrefix(bin: string, home: string | undefined): string | null {
  const r = real(bin);
  if (!r) return null;
  const prefix = dirname(dirname(r));
  // Never a user's whole home (a tool in ~/bin) or the root: the binary alone is shown then.
  if (prefix === "/" || (home && (prefix === home || isUnder(home, prefix)))) return null;
  return prefix;
}
