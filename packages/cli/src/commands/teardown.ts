import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("teardown")
    .argument("<name>", "sandbox name")
    .summary("stop and remove a sandbox's runtime, never losing unsaved work silently")
    .description(
      "Stop the sandbox and remove its runtime. Without --force it refuses while the agent is busy (teardown_requires_force) or while the workspace holds work that is saved nowhere (teardown_blocked, with the files in details). The record stays, so `alpine launch <name>` can start it again.",
    )
    .option("--force", "stop a busy agent and drop unsaved work")
    .addHelpText("after", "\nExamples:\n  alpine teardown fix-login\n  alpine teardown fix-login --force");
  command.action(
    action(command, async (ctx, name: string, opts: { force?: boolean }) => {
      const { printJson, stderrProgress } = await import("../output.ts");
      const { sandboxService } = await import("../service.ts");
      const forced = Boolean(opts.force);
      const out = await (await sandboxService(ctx)).teardown(
        name,
        { force: forced },
        stderrProgress(ctx.globals),
      );
      if (ctx.globals.json) return printJson(out);
      process.stdout.write(
        out.destroyed
          ? `${name} torn down (${out.state})\n`
          : `${name} was already ${out.state}; nothing to do\n`,
      );
    }),
  );
}
