import { PROVIDER_KINDS } from "@alpine/core/provider-kinds";
import { type Command, Option } from "commander";
import { action } from "../run.ts";

interface LaunchOptions {
  repo?: string;
  ref?: string;
  imageProfile?: string;
  provider?: (typeof PROVIDER_KINDS)[number];
  task?: string;
  forceRecreate?: boolean;
  wait: boolean;
}

export function register(program: Command): void {
  const command = program
    .command("launch")
    .argument("<name>", "sandbox name: 1-50 of [a-z0-9-]")
    .summary("create, start or resume a sandbox, optionally with a task")
    .description(
      "Create a sandbox running OpenCode on its own clone of a repository (or start/resume the one of that name), wait until the agent answers, and hand it a task.",
    )
    .option("--repo <url-or-path>", "repository to clone (URL or local path); default: repo.default")
    .option("--ref <ref>", "branch, tag or commit to start from (default: the remote's default branch)")
    .option("--image-profile <profile>", "image profile (sandbox.image_profiles)")
    .addOption(new Option("--provider <provider>", "where the sandbox runs").choices(PROVIDER_KINDS))
    .option("--task <text>", "prompt to give the agent once it is ready")
    .option("--force-recreate", "replace an existing sandbox of that name that has another repo or profile")
    .option("--no-wait", "return as soon as the launch has started; `alpine status` follows it")
    .addHelpText(
      "after",
      `
Examples:
  alpine launch fix-login --repo . --task "Fix the login redirect loop"
  alpine launch docs --repo https://github.com/acme/site.git --ref main
  alpine launch fix-login            # start it again or resume it from its checkpoint`,
    );
  command.action(
    action(command, async (ctx, name: string, opts: LaunchOptions) => {
      const { launchCommand } = await import("./launch-run.ts");
      await launchCommand(ctx, name, opts);
    }),
  );
}

export type { LaunchOptions };
