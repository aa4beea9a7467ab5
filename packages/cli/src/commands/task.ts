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
      const orchestrator = await ctx.orchestrator();
      const { printJson, stderrProgress } = await import("../output.ts");
      const { record: sent, session_id } = await orchestrator.task(name, words.join(" "));
      let record = sent;
      if (opts.wait) {
        stderrProgress(ctx.globals).step("waiting for the agent to finish");
        record = await orchestrator.waitForTask(name);
      }
      if (ctx.globals.json) return printJson({ name, session_id, state: record.state });
      process.stdout.write(`task sent to ${name} (session ${session_id}); sandbox is ${record.state}\n`);
    }),
  );
}
