import { defineCommand, defineGroup } from "./define.ts";

export default defineGroup({
  name: "env",
  summary: "list and remove prepared environments",
  description:
    "Prepared environments are what a repo's setup produced (ignored files such as node_modules/, the sandbox home's caches), saved after a successful setup and restored by the next launch of the repo with the same key, instead of running setup again (docs/environments.md). `alpine gc` removes the ones unused for 14 days.",
  commands: [
    defineCommand({
      name: "ls",
      summary: "list prepared environments (local directory and the Docker host's volume)",
      description:
        "List the prepared environments of this machine's local store and of the Docker host's alpine-environments volume, least recently used first.",
      examples: ["alpine env ls", "alpine env ls --json"],
      output: "env-ls",
      handler: () => import("./env-run.ts").then((m) => m.envLsCommand),
    }),
    defineCommand({
      name: "rm",
      args: [
        {
          name: "keys",
          description: "keys (or unique key prefixes) to remove; none with --all",
          variadic: true,
          optional: true,
        },
      ],
      summary: "remove prepared environments",
      description:
        "Remove prepared environments by key or unique key prefix (as `env ls` shows them); the next launch of their repo runs setup again. `--all` removes every one.",
      flags: { all: { type: "boolean", description: "remove every prepared environment" } },
      examples: ["alpine env rm 3f2a9c", "alpine env rm --all --json"],
      output: "env-rm",
      handler: () => import("./env-run.ts").then((m) => m.envRmCommand),
    }),
  ],
});
