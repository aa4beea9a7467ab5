/**
 * The fast path of `bin/alpine.js`: `alpine list`/`ls` with at most --json and
 * -v/--verbose, the command scripts and prompts poll. It runs the list command
 * itself (commands/list-run.ts, the same code commander would run) without
 * loading the command-line parser and every command's definition, which are
 * most of the CLI's start-up (docs/performance.md). Anything else, including
 * --help and unknown flags, goes through the full CLI.
 */
import { runAction } from "./run.ts";

const FLAGS = new Set(["--json", "-v", "--verbose"]);

/** The globals of a plain `list` invocation, or null when the full CLI must parse argv. */
export function plainList(argv: readonly string[]): { json: boolean; verbose: boolean } | null {
  const [command, ...rest] = argv;
  if (command !== "list" && command !== "ls") return null;
  if (!rest.every((a) => FLAGS.has(a))) return null;
  return { json: rest.includes("--json"), verbose: rest.includes("-v") || rest.includes("--verbose") };
}

export async function runFast(argv: readonly string[]): Promise<boolean> {
  const globals = plainList(argv);
  if (!globals) return false;
  const { listCommand } = await import("./commands/list-run.ts");
  await runAction({ ...globals, config: process.env.ALPINE_CONFIG || undefined }, listCommand, {
    config: false,
  });
  return true;
}
