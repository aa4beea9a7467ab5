import { Command, CommanderError, Option } from "commander";
import * as auth from "./commands/auth.ts";
import * as checkpoint from "./commands/checkpoint.ts";
import * as cloud from "./commands/cloud.ts";
import * as config from "./commands/config.ts";
import * as diff from "./commands/diff.ts";
import * as doctor from "./commands/doctor.ts";
import * as exportCmd from "./commands/export.ts";
import * as gc from "./commands/gc.ts";
import * as image from "./commands/image.ts";
import * as launch from "./commands/launch.ts";
import * as list from "./commands/list.ts";
import * as logs from "./commands/logs.ts";
import * as open from "./commands/open.ts";
import * as status from "./commands/status.ts";
import * as task from "./commands/task.ts";
import * as teardown from "./commands/teardown.ts";
import { globalsOf, runAction } from "./run.ts";

// Each command module only declares its command here; what it needs to run
// (SQLite, YAML, zod, providers) is imported when its action runs.
const COMMANDS = [
  launch,
  list,
  status,
  open,
  task,
  diff,
  exportCmd,
  checkpoint,
  teardown,
  logs,
  gc,
  auth,
  config,
  doctor,
  image,
  cloud,
];

export function buildProgram(): Command {
  const program = new Command("alpine")
    .description("Run the OpenCode coding agent in disposable sandboxes.")
    .version("0.1.0", "-V, --version")
    .option("--json", "print machine-readable JSON on stdout (errors too)")
    .option("-v, --verbose", "more detail: progress steps, error details")
    .addOption(
      new Option("--config <path>", "config file to use instead of ./alpine.yaml").env("ALPINE_CONFIG"),
    )
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false, showGlobalOptions: true })
    .addHelpText(
      "after",
      `
Examples:
  alpine launch fix-login --repo . --task "Fix the login redirect"
  alpine status fix-login
  alpine open fix-login
  alpine diff fix-login --stat
  alpine teardown fix-login --force

Docs: docs/cli.md, docs/config.md, docs/errors.md`,
    );
  program.exitOverride();
  // Usage errors are rendered by reportError (JSON with --json), not by commander.
  program.configureOutput({ outputError: () => {} });
  for (const command of COMMANDS) command.register(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0 || err.code === "commander.helpDisplayed" || err.code === "commander.version") {
        process.exitCode = 0;
        return;
      }
      // Usage errors are reported in the contract's shape too.
      await runAction(globalsOf(program), async () => {
        const { AlpineError } = await import("@alpine/core");
        throw new AlpineError(
          "usage_invalid",
          err.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " "),
          { code: err.code },
        );
      });
      return;
    }
    throw err;
  }
}

await main(process.argv);
