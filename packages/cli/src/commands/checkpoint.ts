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
      const { AlpineError, validateName } = await import("@alpine/core");
      validateName(name);
      await (await ctx.orchestrator()).get(name);
      throw new AlpineError(
        "not_implemented",
        "checkpoints are not available yet in this version of alpine",
        {
          command: "checkpoint",
        },
      );
    }),
  );
}
