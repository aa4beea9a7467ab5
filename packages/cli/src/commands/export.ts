import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("export")
    .argument("<name>", "sandbox name")
    .summary("save the agent's work as a branch, pull request or patch")
    .description(
      "Commit the sandbox's work onto <github.branch_prefix>/<name> (or --branch) and push it to the repo's remote with your git credentials; --pr also opens a pull request; --patch writes a patch file instead.",
    )
    .option("--branch <branch>", "branch to push to")
    .option("--pr", "open a pull request (GitHub REST API)")
    .option("--patch <file>", "write a patch to FILE and push nothing")
    .option("--from-checkpoint", "export from the latest verified checkpoint instead of the live workspace")
    .addHelpText(
      "after",
      "\nExamples:\n  alpine export fix-login --pr\n  alpine export fix-login --patch fix.patch",
    );
  command.action(
    action(
      command,
      async (
        ctx,
        name: string,
        opts: { branch?: string; pr?: boolean; patch?: string; fromCheckpoint?: boolean },
      ) => {
        const { exportCommand } = await import("./export-run.ts");
        await exportCommand(ctx, name, opts);
      },
    ),
  );
}
