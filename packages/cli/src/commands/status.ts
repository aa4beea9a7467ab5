import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "status",
  args: [{ name: "name", description: "sandbox name" }],
  summary: "show a sandbox's state, agent and workspace",
  description:
    "Show a sandbox's lifecycle state and, when it runs, a live probe of its sandboxd: phase, agent state, workspace branch/head/changed files, and what would block a teardown.",
  examples: ["alpine status fix-login", "alpine status fix-login --json | jq .runtime.agent"],
  output: "status",
  handler: () => import("./status-run.ts").then((m) => m.statusCommand),
});
