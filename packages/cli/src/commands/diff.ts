import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "diff",
  args: [{ name: "name", description: "sandbox name" }],
  summary: "show the agent's changes",
  description:
    "Show everything the sandbox's workspace changed since the commit it started from: commits, uncommitted edits and new (untracked, not ignored) files.",
  flags: {
    stat: { type: "boolean", description: "only list files with insertions/deletions" },
  },
  examples: ["alpine diff fix-login", "alpine diff fix-login --stat", "alpine diff fix-login --json"],
  output: "diff",
  handler: () => import("./diff-run.ts").then((m) => m.diffCommand),
});
