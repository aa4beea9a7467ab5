import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { AlpineError } from "@alpine/core";
import type { Context } from "../context.ts";
import { printJson, stderrProgress } from "../output.ts";

export async function exportCommand(
  ctx: Context,
  name: string,
  opts: { branch?: string; pr?: boolean; patch?: string; fromCheckpoint?: boolean },
): Promise<void> {
  if (opts.patch !== undefined && opts.pr) {
    throw new AlpineError(
      "usage_invalid",
      "--patch writes a file and pushes nothing; it cannot open a pull request",
    );
  }
  const { sandboxService } = await import("../service.ts");
  const { patch, ...out } = await (await sandboxService(ctx)).export(
    name,
    {
      branch: opts.branch,
      pr: opts.pr,
      patch: opts.patch !== undefined,
      from_checkpoint: opts.fromCheckpoint,
    },
    stderrProgress(ctx.globals),
  );
  if (opts.patch !== undefined) {
    const file = resolve(opts.patch);
    writeFileSync(file, patch ?? "");
  }
  if (ctx.globals.json) return printJson(out);
  if (out.pushed) {
    process.stdout.write(
      `pushed ${out.commit?.slice(0, 12)} to ${out.branch} on ${out.remote} (${out.files_changed} files, +${out.insertions} -${out.deletions})\n`,
    );
  } else {
    process.stdout.write(`wrote a patch of ${out.files_changed} files to ${resolve(opts.patch ?? "")}\n`);
  }
  if (out.pr_url) process.stdout.write(`pull request: ${out.pr_url}\n`);
}
