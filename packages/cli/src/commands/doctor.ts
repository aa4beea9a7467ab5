import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("doctor")
    .summary("check what this machine has for running sandboxes")
    .description(
      "Report what is available here: node, git, ripgrep, OpenCode, bubblewrap (and the isolation a local sandbox gets), docker, wrangler, and which model credentials a sandbox would receive (names only).",
    )
    .addHelpText("after", "\nExamples:\n  alpine doctor\n  alpine doctor --json");
  command.action(
    action(command, async (ctx) => {
      const { doctorCommand } = await import("./doctor-run.ts");
      await doctorCommand(ctx);
    }),
  );
}
