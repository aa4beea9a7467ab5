/**
 * The fast path of `bin/alpine.js`: `alpine list`/`ls` with at most --json and
 * -v/--verbose, the command scripts and prompts poll. It lists the local store
 * itself, with the code the list command uses (commands/list-view.ts), without
 * loading the command-line parser and every command's definition, which are most
 * of the CLI's start-up (docs/performance.md). It is built on its own as one
 * CommonJS file (dist/fast.cjs, scripts/build.mjs) so that Node's ESM loader has
 * nothing to resolve or link. Anything else, including --help, unknown flags and
 * a configuration that may point at the Cloudflare control plane, goes through
 * the full CLI.
 */
import type { FlagSpecs } from "./commands/define.ts";
import { flagSyntax } from "./commands/define.ts";
import { GLOBAL_FLAGS } from "./commands/program.ts";
import { reportError } from "./output.ts";
import { alpineHome, stateDbPath } from "./paths.ts";
import { mayBeRemote } from "./remote-hint.ts";
import type { Globals } from "./run.ts";

/** The spellings of the boolean flags among `flags`: `--json`, `-v`, `--verbose`. */
function booleanSpellings(flags: FlagSpecs, key: string): string[] {
  const spec = flags[key];
  if (spec?.type !== "boolean") return [];
  return flagSyntax(key, spec).split(", ");
}

/**
 * `list` and its aliases, as commands/list.ts declares them (test/fast.test.ts holds the two
 * together, and bin/alpine.js's check). Not imported from there: a declaration brings its
 * handler's code into this bundle (esbuild bundles what import() names), and this file must
 * stay small.
 */
export const LIST_NAMES: ReadonlySet<string> = new Set(["list", "ls"]);
// The flags a plain list may carry: the boolean global flags (commands/program.ts), data only.
const JSON_FLAGS = booleanSpellings(GLOBAL_FLAGS, "json");
const VERBOSE_FLAGS = booleanSpellings(GLOBAL_FLAGS, "verbose");
const FLAGS = new Set([...JSON_FLAGS, ...VERBOSE_FLAGS]);

/** The globals of a plain `list` invocation, or null when the full CLI must parse argv. */
export function plainList(argv: readonly string[]): { json: boolean; verbose: boolean } | null {
  const [command, ...rest] = argv;
  if (command === undefined || !LIST_NAMES.has(command)) return null;
  if (!rest.every((a) => FLAGS.has(a))) return null;
  return {
    json: rest.some((a) => JSON_FLAGS.includes(a)),
    verbose: rest.some((a) => VERBOSE_FLAGS.includes(a)),
  };
}

/**
 * Runs a plain local `alpine list` as the full CLI would (run.ts runAction with
 * commands/list-run.ts): the same output, errors and exit code. false: not handled.
 */
export async function runFast(argv: readonly string[]): Promise<boolean> {
  const flags = plainList(argv);
  if (!flags) return false;
  const globals: Globals = { ...flags, config: process.env.ALPINE_CONFIG || undefined };
  // The control plane's list needs the configuration and its client: the full CLI's job.
  if (mayBeRemote(globals.config)) return false;
  let store: { close(): void } | undefined;
  try {
    const [{ SqliteStateStore }, { localListItem, mayHaveSuspendedItself, printList, withOverlaps }] =
      await Promise.all([import("./store/sqlite-store.ts"), import("./commands/list-view.ts")]);
    const opened = new SqliteStateStore(stateDbPath(alpineHome()));
    store = opened;
    const records = await opened.list();
    // A runtime that may have suspended itself needs the providers: the full CLI's list.
    if (mayHaveSuspendedItself(records)) return false;
    printList(withOverlaps(records.map(localListItem)), globals.json);
  } catch (err) {
    process.exitCode = reportError(err, globals);
  } finally {
    store?.close();
  }
  return true;
}
