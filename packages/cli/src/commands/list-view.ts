import type { ListItemView } from "@alpine/core";
import { printJson, relativeTime, table } from "../output.ts";

/**
 * A stored record as `alpine list` shows it. Imported from core's views module alone
 * (type-only imports there), so reading the local store loads neither zod nor the rest of core.
 */
export { listItemView as localListItem } from "@alpine/core/views";

/** `alpine list`'s output: the items as JSON, or a table (a hint when there are none). */
export function printList(items: readonly ListItemView[], json: boolean): void {
  if (json) {
    printJson(items);
  } else if (items.length === 0) {
    process.stdout.write("no sandboxes yet; start one with `alpine launch <name> --repo <url-or-path>`\n");
  } else {
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
  }
}
