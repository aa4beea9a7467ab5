import type { Context } from "../context.ts";
import { printJson } from "../output.ts";
import { sandboxService } from "../service.ts";

export async function openCommand(
  ctx: Context,
  name: string,
  opts: { print: boolean; port?: number },
): Promise<void> {
  const port = opts.port;
  const { web_url: webUrl } = await (await sandboxService(ctx)).login(
    name,
    port !== undefined ? { port } : {},
  );
  let opened = false;
  if (!opts.print && !ctx.globals.json) {
    const { openBrowser } = await import("../browser.ts");
    opened = await openBrowser(webUrl);
  }
  if (ctx.globals.json)
    return printJson({ name, web_url: webUrl, opened, ...(port !== undefined ? { port } : {}) });
  process.stdout.write(`${webUrl}\n`);
  if (!opts.print && !opened)
    process.stderr.write("could not open a browser; open the link above (valid 60 s)\n");
}
