import type { Command } from "commander";
import { action } from "../run.ts";

export function register(program: Command): void {
  const command = program
    .command("open")
    .argument("<name>", "sandbox name")
    .summary("open the sandbox's OpenCode web UI in a browser")
    .description(
      "Mint a one-time login link to the sandbox's OpenCode web UI (valid 60 s, usable once) and open it in your browser. The link sets a session cookie; OpenCode's own password never leaves the sandbox.",
    )
    .option("--print", "print the link instead of opening a browser")
    .addHelpText("after", "\nExamples:\n  alpine open fix-login\n  alpine open fix-login --print");
  command.action(
    action(command, async (ctx, name: string, opts: { print?: boolean }) => {
      const { sandboxService } = await import("../service.ts");
      const { web_url: webUrl } = await (await sandboxService(ctx)).login(name);
      let opened = false;
      if (!opts.print && !ctx.globals.json) {
        const { openBrowser } = await import("../browser.ts");
        opened = await openBrowser(webUrl);
      }
      const { printJson } = await import("../output.ts");
      if (ctx.globals.json) return printJson({ name, web_url: webUrl, opened });
      process.stdout.write(`${webUrl}\n`);
      if (!opts.print && !opened)
        process.stderr.write("could not open a browser; open the link above (valid 60 s)\n");
    }),
  );
}
