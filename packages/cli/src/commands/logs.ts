import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("logs")
    .argument("<name>", "sandbox name")
    .summary("show a sandbox's lifecycle events and sandboxd/OpenCode log lines")
    .option("-f, --follow", "keep printing new events and log lines until interrupted")
    .option("--tail <n>", "log lines to show from the runtime", "200")
    .addHelpText("after", "\nExamples:\n  alpine logs fix-login\n  alpine logs fix-login --follow");
  command.action(
    action(command, async (ctx, name: string, opts: { follow?: boolean; tail: string }) => {
      const { logsCommand } = await import("./logs-run.ts");
      await logsCommand(ctx, name, {
        follow: Boolean(opts.follow),
        tail: Number.parseInt(opts.tail, 10) || 200,
      });
    }),
  );
}
