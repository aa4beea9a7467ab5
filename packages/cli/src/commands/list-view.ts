import type { ListItemView, SandboxRecord, Usage } from "@alpine/core";
import { printJson, relativeTime, table } from "../output.ts";

/**
 * A stored record as `alpine list` shows it. Imported from core's views module alone
 * (type-only imports there), so reading the local store loads neither zod nor the rest of core.
 */
export { listItemView as localListItem, withOverlaps } from "@alpine/core/views";

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Whether some record says running or completed while its runtime may have stopped by suspending
 * itself (docs/durability.md, "Suspension"): a local sandboxd whose process is gone, or any docker
 * sandbox (telling needs the daemon). Then `list` asks the providers and records the suspensions
 * first (the orchestrator's list); otherwise the store alone is the truth and `list` stays fast.
 */
export function mayHaveSuspendedItself(records: readonly SandboxRecord[], alive = processAlive): boolean {
  return records.some((r) => {
    if (r.state !== "running" && r.state !== "completed") return false;
    if (r.provider === "docker") return true;
    if (r.provider !== "local") return false;
    const pid = r.runtime?.handle.pid;
    return typeof pid !== "number" || !alive(pid);
  });
}

/** The SPENT column: `1234 tok $0.01`, `-` before anything was observed. */
function spent(u: Usage | null): string {
  if (!u) return "-";
  const tokens = u.input + u.output + u.reasoning + u.cache_read + u.cache_write;
  return `${tokens} tok${u.cost ? ` $${u.cost.toFixed(2)}` : ""}`;
}

/** `alpine list`'s output: the items as JSON, or a table (a hint when there are none). */
export function printList(items: readonly ListItemView[], json: boolean): void {
  if (json) {
    printJson(items);
  } else if (items.length === 0) {
    process.stdout.write("no sandboxes yet; start one with `alpine launch <name> --repo <url-or-path>`\n");
  } else {
    const overlapping = items.filter((i) => i.overlaps?.length);
    process.stdout.write(
      `${table(
        ["NAME", "STATE", "AGENT", "PROVIDER", "REPO", "SPENT", "LAST ACTIVITY", "CREATED", "DISK"],
        items.map((i) => [
          i.name,
          i.state,
          i.agent,
          i.provider,
          i.repo,
          spent(i.usage),
          relativeTime(i.last_activity),
          relativeTime(i.created_at),
          // A suspended sandbox costs only its disk; a running one's disk is not the point.
          i.disk_bytes == null ? "" : formatBytes(i.disk_bytes),
        ]),
      )}\n`,
    );
    // Why an agent waits or stopped, one line each under the table (too long for a column).
    for (const i of items) {
      if (i.agent_reason) process.stdout.write(`${i.name}: ${i.agent}: ${i.agent_reason}\n`);
    }
    // Each pair is told once, from the side that sorts first.
    for (const i of overlapping) {
      for (const o of i.overlaps) {
        if (o.name < i.name && items.some((j) => j.name === o.name)) continue;
        process.stdout.write(
          `overlap: ${i.name} and ${o.name} both changed ${o.files.join(", ")} (as last seen ${relativeTime(i.changes_seen_at)})\n`,
        );
      }
    }
  }
}

/** 1536 → "1.5 KB" (powers of 1024, one decimal below 10). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 || value >= 10 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}
