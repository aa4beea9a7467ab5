import type { Command } from "commander";
import type { Context } from "./context.ts";
import type { OutputOptions } from "./output.ts";

export interface Globals extends OutputOptions {
  config?: string;
}

export function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--json");
}

export function globalsOf(command: Command): Globals {
  let root = command;
  while (root.parent) root = root.parent;
  const opts = root.opts<{ json?: boolean; verbose?: boolean; config?: string }>();
  return {
    json: Boolean(opts.json) || wantsJson(process.argv),
    verbose: Boolean(opts.verbose),
    config: opts.config,
  };
}

/**
 * Runs a command body with the shared context and renders any failure as the
 * contract says (docs/json-contract.md, "The error object"; docs/errors.md), setting the exit code.
 */
export async function runAction(
  globals: Globals,
  body: (ctx: Context) => Promise<void>,
  opts: { config?: boolean } = {},
): Promise<void> {
  let ctx: Context | undefined;
  try {
    const { createContext } = await import("./context.ts");
    ctx = await createContext(globals, opts);
    await body(ctx);
  } catch (err) {
    const { reportError } = await import("./output.ts");
    process.exitCode = reportError(err, globals);
  } finally {
    ctx?.close();
  }
}
