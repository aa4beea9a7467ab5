import type { ListItemView } from "@alpine/core";
import { printJson, relativeTime, table } from "../output.ts";

/**
 * A stored record as `alpine list` shows it. Imported from core's views module alone
 * (type-only imports there), so reading the local store loads neither zod nor the rest of core.
 */
export { listItemView as localListItem, withOverlaps } from "@alpine/core/views";

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
        ["NAME", "STATE", "AGENT", "PROVIDER", "REPO", "LAST ACTIVITY", "CREATED"],
        items.map((i) => [
          i.name,
          i.state,
          i.agent,
          i.provider,
          i.repo,
          relativeTime(i.last_activity),
          relativeTime(i.created_at),
        ]),
      )}\n`,
    );
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
