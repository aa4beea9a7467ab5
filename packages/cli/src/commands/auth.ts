import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const auth = program.command("auth").summary("manage the model credentials sandboxes receive");
  const sync = auth
    .command("sync")
    .summary("copy model credentials from OpenCode's auth.json into alpine")
    .description(
      "Copy the allowed providers' entries (opencode.auth_providers, or --providers) from your OpenCode auth.json into alpine's own credential file (mode 0600), which launches read. Secrets are never printed.",
    )
    .option("--providers <ids>", "comma-separated provider ids, e.g. openai,anthropic")
    .addHelpText("after", "\nExamples:\n  alpine auth sync\n  alpine auth sync --providers openai,anthropic");
  sync.action(
    action(sync, async (ctx, opts: { providers?: string }) => {
      const { authSync } = await import("./auth-run.ts");
      await authSync(ctx, opts.providers);
    }),
  );
}
