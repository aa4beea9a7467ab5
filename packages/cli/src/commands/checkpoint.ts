import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "checkpoint",
  args: [{ name: "name", description: "sandbox name" }],
  summary: "save the sandbox's workspace and sessions, verified",
  description:
    "Write a checkpoint: a git bundle of the sandbox branch with every uncommitted and untracked change, plus OpenCode's sessions, verified by re-reading before it counts.",
  examples: ["alpine checkpoint fix-login"],
  output: "checkpoint",
  handler: () => import("./checkpoint-run.ts").then((m) => m.checkpointCommand),
});
