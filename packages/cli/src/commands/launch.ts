import { PROVIDER_KINDS } from "@alpine/core/provider-kinds";
import { defineCommand } from "./define.ts";

/** What launch-run.ts receives from the flags below. */
export interface LaunchOptions {
  repo?: string;
  ref?: string;
  imageProfile?: string;
  provider?: (typeof PROVIDER_KINDS)[number];
  task?: string;
  forceRecreate?: boolean;
  skipSetup?: boolean;
  wait: boolean;
}

export default defineCommand({
  name: "launch",
  args: [{ name: "name", description: "sandbox name: 1-50 of [a-z0-9-]" }],
  summary: "create, start or resume a sandbox, optionally with a task",
  description:
    "Create a sandbox running OpenCode on its own clone of a repository (or start/resume the one of that name), wait until the agent answers, and hand it a task.",
  flags: {
    repo: {
      type: "string",
      value: "url-or-path",
      description: "repository to clone (URL or local path); default: repo.default",
    },
    ref: {
      type: "string",
      value: "ref",
      description: "branch, tag or commit to start from (default: the remote's default branch)",
    },
    imageProfile: { type: "string", value: "profile", description: "image profile (sandbox.image_profiles)" },
    provider: {
      type: "string",
      value: "provider",
      description: "where the sandbox runs",
      choices: PROVIDER_KINDS,
    },
    task: { type: "string", value: "text", description: "prompt to give the agent once it is ready" },
    forceRecreate: {
      type: "boolean",
      description: "replace an existing sandbox of that name that has another repo or profile",
    },
    skipSetup: {
      type: "boolean",
      description: "do not run the environment's setup (docs/environments.md); start commands still run",
    },
    wait: {
      type: "negated",
      description: "return as soon as the launch has started; `alpine status` follows it",
    },
  },
  examples: [
    'alpine launch fix-login --repo . --task "Fix the login redirect loop"',
    "alpine launch docs --repo https://github.com/acme/site.git --ref main",
    "alpine launch fix-login            # start it again or resume it from its checkpoint",
    "alpine launch quick --repo . --skip-setup   # without the repo's setup (node_modules/ stays empty)",
  ],
  output: "launch",
  handler: () => import("./launch-run.ts").then((m) => m.launchCommand),
});
