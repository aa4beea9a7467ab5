import type { Context } from "../context.ts";
import { printJson, stderrProgress } from "../output.ts";
import { sandboxService } from "../service.ts";

export async function taskCommand(
  ctx: Context,
  name: string,
  words: string[],
  opts: { wait: boolean; budget?: string },
): Promise<void> {
  const out = await (await sandboxService(ctx)).task(
    name,
    words.join(" "),
    { wait: opts.wait, budget: opts.budget },
    stderrProgress(ctx.globals),
  );
  if (ctx.globals.json) return printJson(out);
  process.stdout.write(`task sent to ${name} (session ${out.session_id}); sandbox is ${out.state}\n`);
}
