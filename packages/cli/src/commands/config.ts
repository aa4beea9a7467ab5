import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const config = program.command("config").summary("inspect alpine's configuration");
  const show = config
    .command("show")
    .summary("print the effective config and where each value came from")
    .description(
      "Print the effective configuration: built-in defaults, overridden by $XDG_CONFIG_HOME/alpine/config.yaml, then ./alpine.yaml (or --config / ALPINE_CONFIG), then ALPINE_* variables — with the source of each key.",
    )
    .addHelpText("after", "\nExamples:\n  alpine config show\n  alpine config show --json | jq .sources");
  show.action(
    action(show, async (ctx) => {
      const { printJson, dim, table } = await import("../output.ts");
      const { config: effective, sources, files } = ctx.loaded;
      if (ctx.globals.json) return printJson({ config: effective, sources, files });
      const rows = Object.entries(sources).map(([key, source]) => {
        const [section, leaf] = key.split(".") as [string, string];
        const value = (effective as Record<string, Record<string, unknown>>)[section]?.[leaf];
        return [key, value === undefined ? dim("(unset)") : JSON.stringify(value), source];
      });
      process.stdout.write(`${table(["KEY", "VALUE", "SOURCE"], rows)}\n`);
    }),
  );
}
