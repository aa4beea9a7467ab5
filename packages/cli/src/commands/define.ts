/**
 * Commands as data: every verb of the CLI is one declaration made with
 * defineCommand() (a group of verbs, such as `auth sync`, with defineGroup()),
 * listed in registry.ts. main.ts builds commander from the registry
 * (to-commander.ts); the contract test and the fast path read the same
 * declarations. A declaration is plain data plus a loader of its handler, so
 * the registry is cheap to import: no commander, zod or provider code runs
 * until a handler is loaded, and only the one that runs is.
 *
 * This module holds types and two identity functions; it must import nothing
 * at run time.
 */
import type { OUTPUT_SCHEMAS } from "@alpine/core";
import type { Context } from "../context.ts";

/** The name of a `--json` output schema: a key of core's OUTPUT_SCHEMAS, published as docs/schemas/<name>.schema.json. */
export type OutputSchemaName = Exclude<keyof typeof OUTPUT_SCHEMAS, "error">;

/** A positional argument: `<name>`, or `<name...>` when variadic (the rest of the words). */
export interface ArgSpec {
  readonly name: string;
  readonly description: string;
  readonly variadic?: boolean;
  /** `[name]`: may be left out (the handler gets undefined). */
  readonly optional?: boolean;
}

interface FlagCommon {
  readonly description: string;
  /** One-letter alias, e.g. "f" for `-f, --follow`. */
  readonly short?: string;
  /** An environment variable that sets the flag when it is not given. */
  readonly env?: string;
}

/** `--name`: true when given, false when not. */
export interface BooleanFlag extends FlagCommon {
  readonly type: "boolean";
}

/** `--no-name`: false when given, true when not. */
export interface NegatedFlag extends FlagCommon {
  readonly type: "negated";
}

/** `--name <value>`. */
export interface StringFlag extends FlagCommon {
  readonly type: "string";
  /** The placeholder shown in help: `--repo <url-or-path>`. */
  readonly value: string;
  readonly default?: string;
  readonly choices?: readonly string[];
}

/** `--name <value...>`: every value given, in order. */
export interface StringsFlag extends FlagCommon {
  readonly type: "strings";
  readonly value: string;
}

/** `--name <n>` read by `parse`, which throws an Error whose message says what is allowed. */
export interface NumberFlag extends FlagCommon {
  readonly type: "number";
  readonly value: string;
  readonly default?: number;
  readonly parse: (raw: string) => number;
}

export type FlagSpec = BooleanFlag | NegatedFlag | StringFlag | StringsFlag | NumberFlag;

/** Flags by the option's name in camelCase; the long flag is its kebab-case (`forceRecreate` → `--force-recreate`). */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

type FlagValue<S extends FlagSpec> = S extends BooleanFlag | NegatedFlag
  ? boolean
  : S extends StringsFlag
    ? string[] | undefined
    : S extends NumberFlag
      ? S extends { readonly default: number }
        ? number
        : number | undefined
      : S extends { readonly choices: readonly (infer C)[] }
        ? C | (S extends { readonly default: string } ? never : undefined)
        : S extends { readonly default: string }
          ? string
          : string | undefined;

/** The options object a handler receives for the flags `F`. */
export type FlagValues<F extends FlagSpecs> = { -readonly [K in keyof F]: FlagValue<F[K]> };

/** The positional values a handler receives for the arguments `A`, in order. */
export type ArgValues<A extends readonly ArgSpec[]> = {
  -readonly [K in keyof A]: A[K] extends { readonly variadic: true } ? string[] : string;
};

/** What runs a verb: the positional arguments in order, then the options (commander's order). */
export type Handler<A extends readonly ArgSpec[], F extends FlagSpecs> = (
  ctx: Context,
  ...input: [...ArgValues<A>, FlagValues<F>]
) => Promise<void>;

export interface CommandSpec<A extends readonly ArgSpec[], F extends FlagSpecs> {
  readonly name: string;
  readonly aliases?: readonly string[];
  /** One line, shown in the list of commands. */
  readonly summary: string;
  /** A paragraph, shown in the command's own --help (default: the summary). */
  readonly description?: string;
  readonly args?: A;
  readonly flags?: F;
  /** Lines of the help's "Examples:" block. */
  readonly examples: readonly string[];
  /** The schema of what `--json` prints on success. */
  readonly output: OutputSchemaName;
  /** false: the verb runs without reading alpine.yaml (and so without YAML and zod). Default true. */
  readonly config?: boolean;
  /** Loads the handler, e.g. `() => import("./status-run.ts").then((m) => m.statusCommand)`. */
  readonly handler: () => Promise<Handler<A, F>>;
}

/** A verb as the registry holds it: its types erased. */
export interface CommandDef {
  readonly kind: "command";
  readonly name: string;
  readonly aliases: readonly string[];
  readonly summary: string;
  readonly description?: string;
  readonly args: readonly ArgSpec[];
  readonly flags: FlagSpecs;
  readonly examples: readonly string[];
  readonly output: OutputSchemaName;
  readonly config: boolean;
  readonly handler: () => Promise<(ctx: Context, ...input: unknown[]) => Promise<void>>;
}

/** A command that only groups verbs: `alpine auth` groups `alpine auth sync`. */
export interface GroupDef {
  readonly kind: "group";
  readonly name: string;
  readonly summary: string;
  readonly description?: string;
  readonly commands: readonly CommandDef[];
}

export type RegistryEntry = CommandDef | GroupDef;

/**
 * Declares a verb. The type parameters are inferred from the declaration, so a
 * handler whose parameters do not match its arguments and flags does not compile.
 */
export function defineCommand<
  const A extends readonly ArgSpec[] = [],
  const F extends FlagSpecs = Record<never, FlagSpec>,
>(spec: CommandSpec<A, F>): CommandDef {
  return {
    kind: "command",
    aliases: [],
    args: [],
    flags: {},
    config: true,
    ...spec,
    handler: spec.handler as CommandDef["handler"],
  };
}

export function defineGroup(spec: Omit<GroupDef, "kind">): GroupDef {
  return { kind: "group", ...spec };
}

/** `forceRecreate` → `--force-recreate`; a negated flag gets `--no-`. */
export function longFlag(key: string, spec: FlagSpec): string {
  const kebab = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return spec.type === "negated" ? `--no-${kebab}` : `--${kebab}`;
}

/** The flag as commander and help write it: `-f, --follow`, `--repo <url-or-path>`, `--ca-cert <file...>`. */
export function flagSyntax(key: string, spec: FlagSpec): string {
  const short = spec.short ? `-${spec.short}, ` : "";
  const value =
    spec.type === "string" || spec.type === "number"
      ? ` <${spec.value}>`
      : spec.type === "strings"
        ? ` <${spec.value}...>`
        : "";
  return `${short}${longFlag(key, spec)}${value}`;
}

/** Every verb of the registry with its full path: `launch`, `auth sync`. */
export function leafCommands(registry: readonly RegistryEntry[]): { path: string; command: CommandDef }[] {
  return registry.flatMap((entry) =>
    entry.kind === "command"
      ? [{ path: entry.name, command: entry }]
      : entry.commands.map((command) => ({ path: `${entry.name} ${command.name}`, command })),
  );
}
