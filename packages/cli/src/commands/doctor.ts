import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "doctor",
  summary: "check what this machine has for running sandboxes",
  description:
    "Report what is available here: node, git, ripgrep, OpenCode, bubblewrap (and the isolation a local sandbox gets), docker, wrangler, and which model credentials a sandbox would receive (names only).",
  examples: ["alpine doctor", "alpine doctor --json"],
  output: "doctor",
  handler: () => import("./doctor-run.ts").then((m) => m.doctorCommand),
});
