import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "gc",
  summary: "tear down completed sandboxes whose work is saved (cron-safe)",
  description:
    "Tear down `completed` sandboxes whose retention (sandbox.completed_retention_minutes) has passed and whose work is saved, when sandbox.auto_teardown is on. Idempotent and safe to run from cron; reports what it kept and why.",
  flags: {
    dryRun: { type: "boolean", description: "only report what would be torn down" },
  },
  examples: ["alpine gc --dry-run", "*/10 * * * * alpine gc --json >> ~/alpine-gc.log"],
  output: "gc",
  handler: () => import("./gc-run.ts").then((m) => m.gcCommand),
});
