import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("task")
    .argument("<name>", "sandbox name")
    .argument("<prompt...>", "what the agent should do")
    .summary("give the agent a new task")
    .description("Send a prompt to the sandbox's agent (a completed sandbox goes back to running).")
    .option("--wait", "wait until the agent has finished the task")
    .addHelpText(
      "after",
      '\nExamples:\n  alpine task fix-login "Now add a regression test"\n  alpine task fix-login --wait Update the changelog',
    );
  command.action(
    action(command, async (ctx, name: string, words: string[], opts: { wait?: boolean }) => {
      const { printJson, stderrProgress } = await import("../output.ts");
      const { sandboxService } = await import("../service.ts");
      const out = await (await sandboxService(ctx)).task(
        name,
        words.join(" "),
        { wait: Boolean(opts.wait) },
        stderrProgress(ctx.globals),
      );
      if (ctx.globals.json) return printJson(out);
      process.stdout.write(`task sent to ${name} (session ${out.session_id}); sandbox is ${out.state}\n`);
    }),
  );
}
