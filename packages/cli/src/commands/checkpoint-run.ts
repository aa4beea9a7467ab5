import type { Context } from "../context.ts";
import { printJson, stderrProgress } from "../output.ts";
import { sandboxService } from "../service.ts";

export async function checkpointCommand(ctx: Context, name: string): Promise<void> {
  const out = await (await sandboxService(ctx)).checkpoint(name, stderrProgress(ctx.globals));
  if (ctx.globals.json) return printJson(out);
  process.stdout.write(
    `checkpoint ${out.checkpoint_id} of ${name}: ${out.verified ? "verified" : "NOT verified"}, ${(out.bytes / 1024).toFixed(1)} KiB\n`,
  );
}
