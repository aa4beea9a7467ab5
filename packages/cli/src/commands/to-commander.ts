/**
 * Builds the commander program from the declarations (define.ts): commander
 * parses argv and renders --help; the declarations say what there is to parse.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import packageJson from "../../package.json" with { type: "json" };
import { globalsOf, runAction } from "../run.ts";
import type { CommandDef, FlagSpec, FlagSpecs, GroupDef, RegistryEntry } from "./define.ts";
import { flagSyntax } from "./define.ts";
import { GLOBAL_FLAGS, PROGRAM, VERSION_FLAG } from "./program.ts";

function examplesText(lines: readonly string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join("\n")}`;
}

function toOption(key: string, spec: FlagSpec): Option {
  const option = new Option(flagSyntax(key, spec), spec.description);
  if (spec.env) option.env(spec.env);
  if (spec.type === "string") {
    if (spec.choices) option.choices(spec.choices);
    if (spec.default !== undefined) option.default(spec.default);
  }
  if (spec.type === "number") {
    const parse = spec.parse;
    // commander reports an InvalidArgumentError as a usage error naming the flag and the value.
    option.argParser((raw: string) => {
      try {
        return parse(raw);
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
    });
    if (spec.default !== undefined) option.default(spec.default);
  }
  return option;
}

/** commander leaves a boolean flag undefined when absent; handlers get false. */
function flagValues(flags: FlagSpecs, opts: Record<string, unknown>): Record<string, unknown> {
  const out = { ...opts };
  for (const [key, spec] of Object.entries(flags)) {
    if (spec.type === "boolean") out[key] = Boolean(opts[key]);
  }
  return out;
}

function addCommand(parent: Command, def: CommandDef): void {
  const command = parent.command(def.name).summary(def.summary);
  for (const alias of def.aliases) command.alias(alias);
  command.description(def.description ?? def.summary);
  for (const arg of def.args) {
    const word = arg.variadic ? `${arg.name}...` : arg.name;
    command.argument(arg.optional ? `[${word}]` : `<${word}>`, arg.description);
  }
  for (const [key, spec] of Object.entries(def.flags)) command.addOption(toOption(key, spec));
  if (def.examples.length > 0) command.addHelpText("after", examplesText(def.examples));
  // commander calls an action with the positional values, the options and the command.
  command.action((...values: unknown[]) => {
    const opts = values.at(-2) as Record<string, unknown>;
    const positionals = values.slice(0, -2);
    return runAction(
      globalsOf(command),
      async (ctx) => {
        const handler = await def.handler();
        await handler(ctx, ...positionals, flagValues(def.flags, opts));
      },
      { config: def.config },
    );
  });
}

function addGroup(parent: Command, def: GroupDef): void {
  const group = parent.command(def.name).summary(def.summary);
  if (def.description) group.description(def.description);
  for (const command of def.commands) addCommand(group, command);
}

export function buildProgram(registry: readonly RegistryEntry[]): Command {
  const program = new Command(PROGRAM.name)
    .description(PROGRAM.description)
    .version(packageJson.version, VERSION_FLAG)
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false, showGlobalOptions: true })
    .addHelpText("after", `${examplesText(PROGRAM.examples)}\n\nDocs: ${PROGRAM.docs}`);
  for (const [key, spec] of Object.entries(GLOBAL_FLAGS)) program.addOption(toOption(key, spec));
  program.exitOverride();
  // Usage errors are rendered by reportError (JSON with --json), not by commander.
  program.configureOutput({ outputError: () => {} });
  for (const entry of registry) {
    if (entry.kind === "group") addGroup(program, entry);
    else addCommand(program, entry);
  }
  return program;
}
