import type { ListItemView, Usage } from "@alpine/core";
import { printJson, relativeTime, table } from "../output.ts";

/**
 * A stored record as `alpine list` shows it. Imported from core's views module alone
 * (type-only imports there), so reading the local store loads neither zod nor the rest of core.
 */
export { listItemView as localListItem } from "@alpine/core/views";

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
    process.stdout.write(
      `${table(
        ["NAME", "STATE", "AGENT", "PROVIDER", "REPO", "SPENT", "LAST ACTIVITY", "CREATED"],
        items.map((i) => [
          i.name,
          i.state,
          i.agent,
          i.provider,
          i.repo,
          spent(i.usage),
          relativeTime(i.last_activity),
          relativeTime(i.created_at),
        ]),
      )}\n`,
    );
    // Why an agent waits or stopped, one line each under the table (too long for a column).
    for (const i of items) {
      if (i.agent_reason) process.stdout.write(`${i.name}: ${i.agent}: ${i.agent_reason}\n`);
    }
  }
}
