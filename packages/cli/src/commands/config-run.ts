import type { Context } from "../context.ts";
import { dim, printJson, table } from "../output.ts";

/** `alpine config show`: each key's effective value and the layer it came from. */
export async function configShowCommand(ctx: Context): Promise<void> {
  const { config: effective, sources, files } = ctx.loaded;
  if (ctx.globals.json) return printJson({ config: effective, sources, files });
  const rows = Object.entries(sources).map(([key, source]) => {
    const [section, leaf] = key.split(".") as [string, string];
    const value = (effective as Record<string, Record<string, unknown>>)[section]?.[leaf];
    return [key, value === undefined ? dim("(unset)") : JSON.stringify(value), source];
  });
  process.stdout.write(`${table(["KEY", "VALUE", "SOURCE"], rows)}\n`);
}
