import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("diff")
    .argument("<name>", "sandbox name")
    .summary("show the agent's changes")
    .description(
      "Show everything the sandbox's workspace changed since the commit it started from: commits, uncommitted edits and new (untracked, not ignored) files.",
    )
    .option("--stat", "only list files with insertions/deletions")
    .addHelpText(
      "after",
      "\nExamples:\n  alpine diff fix-login\n  alpine diff fix-login --stat\n  alpine diff fix-login --json",
    );
  command.action(
    action(command, async (ctx, name: string, opts: { stat?: boolean }) => {
      const { sandboxService } = await import("../service.ts");
      const stat = Boolean(opts.stat);
      const diff = await (await sandboxService(ctx)).diff(name, { stat });
      const { printJson, table } = await import("../output.ts");
      if (ctx.globals.json) return printJson(diff);
      if (stat) {
        if (diff.files.length === 0) {
          process.stdout.write("no changes\n");
          return;
        }
        process.stdout.write(
          `${table(
            ["STATUS", "+", "-", "PATH"],
            diff.files.map((f) => [f.status, String(f.insertions), String(f.deletions), f.path]),
          )}\n`,
        );
        return;
      }
      process.stdout.write(diff.patch ?? "");
    }),
  );
}
