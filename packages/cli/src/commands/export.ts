import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "export",
  args: [{ name: "name", description: "sandbox name" }],
  summary: "save the agent's work as a branch, pull request or patch",
  description:
    "Commit the sandbox's work onto <github.branch_prefix>/<name> (or --branch) and push it to the repo's remote with your git credentials; --pr also opens a pull request; --patch writes a patch file instead.",
  flags: {
    branch: { type: "string", value: "branch", description: "branch to push to" },
    pr: { type: "boolean", description: "open a pull request (GitHub REST API)" },
    patch: { type: "string", value: "file", description: "write a patch to FILE and push nothing" },
    fromCheckpoint: {
      type: "boolean",
      description: "export from the latest verified checkpoint instead of the live workspace",
    },
  },
  examples: ["alpine export fix-login --pr", "alpine export fix-login --patch fix.patch"],
  output: "export",
  handler: () => import("./export-run.ts").then((m) => m.exportCommand),
});
