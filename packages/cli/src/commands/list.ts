import { defineCommand } from "./define.ts";

export default defineCommand({
  name: "list",
  aliases: ["ls"],
  summary: "list sandboxes",
  description: "List every sandbox alpine knows, from its state store (no sandbox is contacted).",
  flags: {
    all: {
      type: "boolean",
      description: "on the Cloudflare control plane: every sandbox, not only yours (admins)",
    },
  },
  examples: ["alpine list", "alpine ls --json | jq '.[].name'", "alpine list --all"],
  output: "list",
  // The store alone: no alpine.yaml (and so no YAML or zod) unless the list is the control plane's.
  config: false,
  handler: () => import("./list-run.ts").then((m) => m.listCommand),
});
