import { defineCommand, defineGroup } from "./define.ts";

export default defineGroup({
  name: "config",
  summary: "inspect alpine's configuration",
  commands: [
    defineCommand({
      name: "show",
      summary: "print the effective config and where each value came from",
      description:
        "Print the effective configuration: built-in defaults, overridden by $XDG_CONFIG_HOME/alpine/config.yaml, then ./alpine.yaml (or --config / ALPINE_CONFIG), then ALPINE_* variables — with the source of each key.",
      examples: ["alpine config show", "alpine config show --json | jq .sources"],
      output: "config-show",
      handler: () => import("./config-run.ts").then((m) => m.configShowCommand),
    }),
  ],
});
