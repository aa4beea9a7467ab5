import type { Context } from "../context.ts";
import { environmentLines, localEnvironment } from "../environment-view.ts";
import { bold, dim, printJson, table } from "../output.ts";

/** `alpine config show`: each key's effective value and the layer it came from. */
export async function configShowCommand(ctx: Context): Promise<void> {
  const { config: effective, sources, files } = ctx.loaded;
  // The repo's environment in effect here: this checkout's devcontainer.json under alpine's section.
  const environment = localEnvironment(process.cwd(), effective.environment);
  if (ctx.globals.json) return printJson({ config: effective, sources, files, environment });
  const rows = Object.entries(sources).map(([key, source]) => {
    const [section, leaf] = key.split(".") as [string, string];
    const value = (effective as Record<string, Record<string, unknown>>)[section]?.[leaf];
    return [key, value === undefined ? dim("(unset)") : JSON.stringify(value), source];
  });
  process.stdout.write(`${table(["KEY", "VALUE", "SOURCE"], rows)}\n`);
  const from = environment.devcontainer ?? "no devcontainer.json here";
  process.stdout.write(
    `\n${bold("environment")} ${dim(`(${from}, with alpine's environment: section over it)`)}\n`,
  );
  process.stdout.write(`${environmentLines(environment.effective).join("\n")}\n`);
}
