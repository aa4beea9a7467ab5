import { defineCommand, defineGroup } from "./define.ts";

const scopeFlags = {
  repo: {
    type: "string",
    value: "url-or-path",
    description: "the repository the secret belongs to (default: repo.default, else the current directory's)",
  },
  global: {
    type: "boolean",
    description: "for every repository (a repo's own secret of the same name wins)",
  },
} as const;

export default defineGroup({
  name: "secrets",
  summary: "manage the secrets a repo's sandboxes get as environment variables",
  commands: [
    defineCommand({
      name: "set",
      args: [{ name: "name", description: "environment variable name, e.g. NPM_TOKEN" }],
      summary: "store a secret (value from stdin or a hidden prompt, never the command line)",
      description:
        "Store a secret for one repository or for all (--global). Its value is read from stdin (piped) or a prompt that does not echo; never from an argument, which other processes could read. By default only the environment's setup and start commands get it; --agent also puts it in the agent's environment, where the agent (and what it runs) can read it. Stored in alpine's home with mode 0600 (with the cloudflare provider: sealed on the control plane, where only admins may set it); never printed, logged, checkpointed or exported.",
      flags: {
        ...scopeFlags,
        agent: { type: "boolean", description: "also give it to the agent's environment, not only to setup" },
      },
      examples: [
        'printf %s "$NPM_TOKEN" | alpine secrets set NPM_TOKEN',
        "alpine secrets set DATABASE_URL --repo https://github.com/acme/app --agent",
        "alpine secrets set SENTRY_TOKEN --global",
      ],
      output: "secrets-set",
      handler: () => import("./secrets-run.ts").then((m) => m.secretsSet),
    }),
    defineCommand({
      name: "ls",
      summary: "list stored secrets: names, scope and agent flag, never values",
      description:
        "List every stored secret with the repository it belongs to (or global) and whether the agent gets it. Values are never shown.",
      flags: {},
      examples: ["alpine secrets ls", "alpine secrets ls --json"],
      output: "secrets-ls",
      handler: () => import("./secrets-run.ts").then((m) => m.secretsLs),
    }),
    defineCommand({
      name: "rm",
      args: [{ name: "name", description: "the secret's name" }],
      summary: "remove a stored secret",
      description:
        "Remove the secret of that name for the repository (or --global). Sandboxes already running keep what they were given until they restart.",
      flags: scopeFlags,
      examples: ["alpine secrets rm NPM_TOKEN", "alpine secrets rm SENTRY_TOKEN --global"],
      output: "secrets-rm",
      handler: () => import("./secrets-run.ts").then((m) => m.secretsRm),
    }),
  ],
});
