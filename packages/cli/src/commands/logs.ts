import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "logs",
  args: [{ name: "name", description: "sandbox name (with --audit: only its lines)", optional: true }],
  summary: "show a sandbox's lifecycle events and sandboxd/OpenCode log lines",
  flags: {
    audit: {
      type: "boolean",
      description:
        "the Cloudflare control plane's audit log instead: who did what, to which sandbox, when, and how it ended (yours; everyone's for admins)",
    },
    follow: {
      type: "boolean",
      short: "f",
      description: "keep printing new events and log lines until interrupted",
    },
    tail: {
      type: "number",
      value: "n",
      description: "log lines to show from the runtime",
      default: 200,
      // Lenient, as it always was: a value that is not a number (or is 0) shows the default.
      parse: (raw: string) => Number.parseInt(raw, 10) || 200,
    },
  },
  examples: ["alpine logs fix-login", "alpine logs fix-login --follow", "alpine logs --audit --tail 50"],
  output: "logs",
  handler: () => import("./logs-run.ts").then((m) => m.logsCommand),
});
