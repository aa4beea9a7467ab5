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
  const orchestrator = await ctx.orchestrator();
  const result = await orchestrator.export(
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
    writeFileSync(file, result.work.patch ?? "");
  }
  const w = result.work;
  const out = {
    name,
    state: result.record.state,
    branch: w.pushed ? w.branch : null,
    commit: w.commit,
    source: result.source,
    pushed: w.pushed,
    remote: w.remote,
    pr_url: result.pr_url,
    files_changed: w.files_changed,
    insertions: w.insertions,
    deletions: w.deletions,
    checkpoint_id: result.checkpoint_id,
    auto_tore_down: result.auto_tore_down,
    exported_at: result.exported_at,
  };
  if (ctx.globals.json) return printJson(out);
  if (w.pushed) {
    process.stdout.write(
      `pushed ${w.commit.slice(0, 12)} to ${w.branch} on ${w.remote} (${w.files_changed} files, +${w.insertions} -${w.deletions})\n`,
    );
  } else {
    process.stdout.write(`wrote a patch of ${w.files_changed} files to ${resolve(opts.patch ?? "")}\n`);
  }
  if (result.pr_url) process.stdout.write(`pull request: ${result.pr_url}\n`);
}
