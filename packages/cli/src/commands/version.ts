import cli from "../../package.json" with { type: "json" };
import type { Context } from "../context.ts";
import { defineCommand } from "./define.ts";

/** `alpine version`: what is installed, for bug reports. */
export async function versionCommand(ctx: Context): Promise<void> {
  // alpine's package.json is loaded anyway (`-V`); sandboxd's only when this verb runs.
  const [{ default: sandboxd }, { printJson }] = await Promise.all([
    import("@alpine/sandboxd/package.json", { with: { type: "json" } }),
    import("../output.ts"),
  ]);
  const out = {
    alpine: cli.version,
    node: process.versions.node,
    // The OpenCode that sandboxes run: the version sandboxd pins (and image/Dockerfile builds).
    opencode: sandboxd.dependencies["opencode-ai"],
    platform: process.platform,
    arch: process.arch,
  };
  if (ctx.globals.json) return printJson(out);
  process.stdout.write(
    `alpine ${out.alpine}\nnode ${out.node}\nopencode ${out.opencode}\nplatform ${out.platform}-${out.arch}\n`,
  );
}

export default defineCommand({
  name: "version",
  summary: "print the versions of alpine, Node and OpenCode, and the platform",
  description:
    "Print alpine's version, the Node version running it, the OpenCode version sandboxes run (pinned by alpine) and the platform (os-arch): what a bug report needs.",
  examples: ["alpine version", "alpine version --json | jq -r .opencode"],
  output: "version",
  config: false,
  // The body above is small and imports what it reads when it runs, so there is nothing to defer.
  handler: async () => versionCommand,
});
