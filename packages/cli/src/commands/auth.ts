import { defineCommand, defineGroup } from "./define.ts";

export default defineGroup({
  name: "auth",
  summary: "manage the model credentials sandboxes receive",
  commands: [
    defineCommand({
      name: "sync",
      summary: "copy model credentials from OpenCode's auth.json into alpine",
      description:
        "Copy the allowed providers' entries (opencode.auth_providers, or --providers) from your OpenCode auth.json into alpine's own credential file (mode 0600), which launches read. Secrets are never printed.",
      flags: {
        providers: {
          type: "string",
          value: "ids",
          description: "comma-separated provider ids, e.g. openai,anthropic",
        },
      },
      examples: ["alpine auth sync", "alpine auth sync --providers openai,anthropic"],
      output: "auth-sync",
      handler: () => import("./auth-run.ts").then((m) => m.authSync),
    }),
  ],
});
