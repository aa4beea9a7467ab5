import { AlpineError, WAIT_EXIT_CODES } from "@alpine/core";
import type { Context } from "../context.ts";
import { printJson, stderrProgress } from "../output.ts";
import { sandboxService } from "../service.ts";

export async function taskCommand(
  ctx: Context,
  name: string,
  words: string[],
  opts: { wait: boolean; newSession?: boolean; budget?: string },
): Promise<void> {
  const service = await sandboxService(ctx);
  const progress = stderrProgress(ctx.globals);
  // The wait is `alpine wait NAME`'s (wait-run.ts): short looks at the status, paced, on every
  // provider; the task route is not held open for it.
  const out = await service.task(
    name,
    words.join(" "),
    { wait: false, newSession: opts.newSession === true, budget: opts.budget },
    progress,
  );
  if (opts.wait) {
    progress.step("waiting for the agent to finish");
    const { waitOn } = await import("./wait-run.ts");
    const waited = (await waitOn(service, [name], "done", undefined)).sandboxes[0];
    if (waited) {
      if (waited.outcome === "error") {
        throw new AlpineError(
          "task_failed",
          `the agent's task failed in sandbox '${name}': ${waited.reason}`,
          {
            session_id: out.session_id,
            error: waited.reason,
          },
        );
      }
      out.state = waited.state ?? out.state;
      out.wait = waited;
      if (waited.outcome !== "done") {
        progress.warn(`stopped waiting: ${waited.outcome}: ${waited.reason}`);
        process.exitCode = WAIT_EXIT_CODES[waited.outcome];
      }
    }
  }
  if (ctx.globals.json) return printJson(out);
  process.stdout.write(`task sent to ${name} (session ${out.session_id}); sandbox is ${out.state}\n`);
}
