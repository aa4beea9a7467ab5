import { existsSync } from "node:fs";
import { resolve, sep } from "node:path";

export interface BwrapLayout {
  workspace: string;
  home: string;
  /** Host dir mounted on /tmp inside. */
  tmp: string;
  /** Host paths to hide (a tmpfs over each that exists). */
  mask: string[];
  /** Paths that must stay visible read-only even under a mask or /tmp (e.g. the opencode binary). */
  keep?: string[];
  /** More bwrap arguments, placed after the mounts and before `--chdir` (e.g. `--unshare-net` and its socket dir). */
  extraArgs?: string[];
}

function isUnder(path: string, parent: string): boolean {
  return path === parent || path.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

function depth(path: string): number {
  return path === "/" ? 0 : path.split("/").length - 1;
}

/**
 * bwrap arguments (everything before `--` and the command). Mounts are
 * ordered parents first, so a bind inside a masked path or inside /tmp lands
 * on the tmpfs/tmp bind (bwrap creates the mount point there) instead of
 * being hidden by it. Each mask is an empty tmpfs, remounted read-only.
 */
export function bwrapArgs(layout: BwrapLayout): string[] {
  type Op = { args: string[]; dest: string; order: number };
  const ops: Op[] = [];
  const tmp = "/tmp";
  let order = 0;
  for (const raw of layout.mask) {
    const m = resolve(raw);
    if (m === "/" || !existsSync(m)) continue;
    // Already hidden: /tmp is replaced by the sandbox's own tmp dir.
    if (isUnder(m, tmp)) continue;
    ops.push({ args: ["--tmpfs", m], dest: m, order: order++ });
  }
  ops.push({ args: ["--bind", layout.tmp, tmp], dest: tmp, order: order++ });
  for (const k of layout.keep ?? []) {
    const p = resolve(k);
    const hidden = isUnder(p, tmp) || layout.mask.some((m) => isUnder(p, resolve(m)));
    if (hidden && existsSync(p)) ops.push({ args: ["--ro-bind", p, p], dest: p, order: order++ });
  }
  ops.push({ args: ["--bind", layout.home, layout.home], dest: layout.home, order: order++ });
  ops.push({ args: ["--bind", layout.workspace, layout.workspace], dest: layout.workspace, order: order++ });
  ops.sort((a, b) => depth(a.dest) - depth(b.dest) || a.order - b.order);
  // Masks end up read-only (after the binds inside them exist): writes there fail instead of vanishing.
  const remounts = ops.filter((o) => o.args[0] === "--tmpfs").flatMap((o) => ["--remount-ro", o.dest]);
  return [
    "--ro-bind",
    "/",
    "/",
    ...ops.flatMap((o) => o.args),
    ...remounts,
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--unshare-pid",
    "--die-with-parent",
    "--new-session",
    ...(layout.extraArgs ?? []),
    "--chdir",
    layout.workspace,
  ];
}
