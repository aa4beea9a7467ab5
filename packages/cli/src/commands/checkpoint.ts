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
      const orchestrator = await ctx.orchestrator();
      const { printJson, stderrProgress } = await import("../output.ts");
      const { record, manifest } = await orchestrator.checkpoint(name, stderrProgress(ctx.globals));
      const cp = record.checkpoint!;
      const out = {
        name,
        checkpoint_id: cp.id,
        verified: cp.verified,
        content_hash: cp.content_hash,
        bytes: cp.bytes,
        created_at: cp.created_at,
      };
      if (ctx.globals.json) return printJson(out);
      process.stdout.write(
        `checkpoint ${cp.id} of ${name}: verified, ${manifest.artifacts.length} artifacts, ${(cp.bytes / 1024).toFixed(1)} KiB\n`,
      );
    }),
  );
}
