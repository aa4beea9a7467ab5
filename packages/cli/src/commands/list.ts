import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("list")
    .alias("ls")
    .summary("list sandboxes")
    .description("List every sandbox alpine knows, from its state store (no sandbox is contacted).")
    .addHelpText("after", "\nExamples:\n  alpine list\n  alpine ls --json | jq '.[].name'");
  command.action(
    action(
      command,
      async (ctx) => {
        const { listCommand } = await import("./list-run.ts");
        await listCommand(ctx);
      },
      { config: false },
    ),
  );
}
