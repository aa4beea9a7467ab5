import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("status")
    .argument("<name>", "sandbox name")
    .summary("show a sandbox's state, agent and workspace")
    .description(
      "Show a sandbox's lifecycle state and, when it runs, a live probe of its sandboxd: phase, agent state, workspace branch/head/changed files, and what would block a teardown.",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  alpine status fix-login\n  alpine status fix-login --json | jq .runtime.agent",
    );
  command.action(
    action(command, async (ctx, name: string) => {
      const { statusCommand } = await import("./status-run.ts");
      await statusCommand(ctx, name);
    }),
  );
}
