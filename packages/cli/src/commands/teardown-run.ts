import type { Context } from "../context.ts";
import { printJson, stderrProgress } from "../output.ts";
import { sandboxService } from "../service.ts";

export async function teardownCommand(ctx: Context, name: string, opts: { force: boolean }): Promise<void> {
  const out = await (await sandboxService(ctx)).teardown(
    name,
    { force: opts.force },
    stderrProgress(ctx.globals),
  );
  if (ctx.globals.json) return printJson(out);
  process.stdout.write(
    out.destroyed
      ? `${name} torn down (${out.state})\n`
      : `${name} was already ${out.state}; nothing to do\n`,
  );
}
