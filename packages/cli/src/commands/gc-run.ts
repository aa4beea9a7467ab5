import type { Context } from "../context.ts";
import { printJson } from "../output.ts";
import { sandboxService } from "../service.ts";

export async function gcCommand(ctx: Context, opts: { dryRun: boolean }): Promise<void> {
  const dryRun = opts.dryRun;
  const result = await (await sandboxService(ctx)).gc({ dryRun });
  if (ctx.globals.json) return printJson({ ...result, dry_run: dryRun });
  const verb = dryRun ? "would tear down" : "torn down";
  process.stdout.write(`${verb}: ${result.torn_down.length ? result.torn_down.join(", ") : "none"}\n`);
  for (const k of result.kept) process.stdout.write(`kept ${k.name}: ${k.reason}\n`);
}
