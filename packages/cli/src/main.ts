import { CommanderError } from "commander";
import { REGISTRY } from "./commands/registry.ts";
import { buildProgram } from "./commands/to-commander.ts";
import { globalsOf, runAction } from "./run.ts";

async function main(argv: string[]): Promise<void> {
  const program = buildProgram(REGISTRY);
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
