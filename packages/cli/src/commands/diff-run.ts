import type { Context } from "../context.ts";
import { printJson, table } from "../output.ts";
import { sandboxService } from "../service.ts";

export async function diffCommand(ctx: Context, name: string, opts: { stat: boolean }): Promise<void> {
  const diff = await (await sandboxService(ctx)).diff(name, { stat: opts.stat });
  if (ctx.globals.json) return printJson(diff);
  if (opts.stat) {
    if (diff.files.length === 0) {
      process.stdout.write("no changes\n");
      return;
    }
    process.stdout.write(
      `${table(
        ["STATUS", "+", "-", "PATH"],
        diff.files.map((f) => [f.status, String(f.insertions), String(f.deletions), f.path]),
      )}\n`,
    );
    return;
  }
  process.stdout.write(diff.patch ?? "");
}
