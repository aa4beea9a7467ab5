import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("gc")
    .summary("tear down completed sandboxes whose work is saved (cron-safe)")
    .description(
      "Tear down `completed` sandboxes whose retention (sandbox.completed_retention_minutes) has passed and whose work is saved, when sandbox.auto_teardown is on. Idempotent and safe to run from cron; reports what it kept and why.",
    )
    .option("--dry-run", "only report what would be torn down")
    .addHelpText(
      "after",
      "\nExamples:\n  alpine gc --dry-run\n  */10 * * * * alpine gc --json >> ~/alpine-gc.log",
    );
  command.action(
    action(command, async (ctx, opts: { dryRun?: boolean }) => {
      const { sandboxService } = await import("../service.ts");
      const dryRun = Boolean(opts.dryRun);
      const result = await (await sandboxService(ctx)).gc({ dryRun });
      const { printJson } = await import("../output.ts");
      if (ctx.globals.json) return printJson({ ...result, dry_run: dryRun });
      const verb = dryRun ? "would tear down" : "torn down";
      process.stdout.write(`${verb}: ${result.torn_down.length ? result.torn_down.join(", ") : "none"}\n`);
      for (const k of result.kept) process.stdout.write(`kept ${k.name}: ${k.reason}\n`);
    }),
  );
}
