import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("checkpoint")
    .argument("<name>", "sandbox name")
    .summary("save the sandbox's workspace and sessions, verified")
    .description(
      "Write a checkpoint: a git bundle of the sandbox branch with every uncommitted and untracked change, plus OpenCode's sessions, verified by re-reading before it counts.",
    )
    .addHelpText("after", "\nExamples:\n  alpine checkpoint fix-login");
  command.action(
    action(command, async (ctx, name: string) => {
      const { printJson, stderrProgress } = await import("../output.ts");
      const { sandboxService } = await import("../service.ts");
      const out = await (await sandboxService(ctx)).checkpoint(name, stderrProgress(ctx.globals));
      if (ctx.globals.json) return printJson(out);
      process.stdout.write(
        `checkpoint ${out.checkpoint_id} of ${name}: ${out.verified ? "verified" : "NOT verified"}, ${(out.bytes / 1024).toFixed(1)} KiB\n`,
      );
    }),
  );
}
