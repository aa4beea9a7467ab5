/**
 * The program itself, as data: its description, the flags every verb takes
 * (read before the verb, e.g. by the fast path in ../fast.ts) and the
 * top-level help's examples. Imports nothing at run time.
 */
import type { FlagSpecs } from "./define.ts";

export const PROGRAM = {
  name: "alpine",
  description: "Run the OpenCode coding agent in disposable sandboxes.",
  examples: [
    'alpine launch fix-login --repo . --task "Fix the login redirect"',
    "alpine status fix-login",
    "alpine open fix-login",
    "alpine diff fix-login --stat",
    "alpine teardown fix-login --force",
  ],
  docs: "docs/cli.md, docs/config.md, docs/errors.md",
} as const;

export const GLOBAL_FLAGS = {
  json: { type: "boolean", description: "print machine-readable JSON on stdout (errors too)" },
  verbose: { type: "boolean", short: "v", description: "more detail: progress steps, error details" },
  config: {
    type: "string",
    value: "path",
    description: "config file to use instead of ./alpine.yaml",
    env: "ALPINE_CONFIG",
  },
} as const satisfies FlagSpecs;

/** `-V, --version` prints the version (commander's own flag; `alpine version` says more). */
export const VERSION_FLAG = "-V, --version";
