import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "teardown",
  args: [{ name: "name", description: "sandbox name" }],
  summary: "stop and remove a sandbox's runtime, never losing unsaved work silently",
  description:
    "Stop the sandbox and remove its runtime. Without --force it refuses while the agent is busy (teardown_requires_force) or while the workspace holds work that is saved nowhere (teardown_blocked, with the files in details). The record stays, so `alpine launch <name>` can start it again.",
  flags: {
    force: { type: "boolean", description: "stop a busy agent and drop unsaved work" },
  },
  examples: ["alpine teardown fix-login", "alpine teardown fix-login --force"],
  output: "teardown",
  handler: () => import("./teardown-run.ts").then((m) => m.teardownCommand),
});
