import type { ExportInput, LaunchInput, TaskWaitOptions } from "../orchestrator.ts";
import {
  type CheckpointView,
  checkpointView,
  type ExportView,
  exportView,
  type GcView,
  type LaunchView,
  launchView,
  type TaskView,
  type TeardownView,
  teardownView,
} from "../views.ts";
import type { OperationContext } from "./context.ts";

/** The sandbox verbs that change state: launch, task, export, checkpoint, teardown, gc. */

export async function launchOperation(ctx: OperationContext, input: LaunchInput): Promise<LaunchView> {
  const result = await ctx.orchestrator.launch(input, ctx.progress);
  return launchView(result, ctx.webUrl?.(result.record));
}

/**
 * `task --wait` on the control plane. The wait runs inside one request of the sandbox's Durable
 * Object, and each probe is an RPC to the container's object plus an HTTP call through its port:
 * two or three subrequests, of a budget of 1,000 per request (Workers Paid, Standard; newer
 * accounts have 10,000). So it probes every 2 s at first (a short task still ends promptly), then
 * every tenth of the time waited so far, at most once a minute, and at most 300 times:
 * ≈ 46 probes in the first 10 minutes, ≈ 97 for a one-hour task, ≈ 4.4 hours in all, ≤ 900 subrequests.
 */
export const CONTROL_PLANE_TASK_WAIT = {
  pollMs: (waitedMs: number) => Math.min(60_000, Math.max(2_000, Math.round(waitedMs / 10))),
  maxPolls: 300,
} as const satisfies TaskWaitOptions;

/** `alpine task`: sends the prompt; with `wait`, returns once the agent finished it. */
export async function taskOperation(
  ctx: OperationContext,
  name: string,
  prompt: string,
  opts: { wait: boolean; newSession?: boolean; budget?: string },
): Promise<TaskView> {
  const o = ctx.orchestrator;
  await o.resume(name, ctx.progress);
  const sent = await o.task(name, prompt, { newSession: opts.newSession === true, budget: opts.budget });
  let record = sent.record;
  if (opts.wait) {
    ctx.progress.step("waiting for the agent to finish");
    record = await o.waitForTask(name, ctx.taskWait);
    if (record.state === "running") {
      ctx.progress.warn(
        `the agent is still working; stopped waiting (follow it with \`alpine status ${name}\`)`,
      );
    }
  }
  return { name, session_id: sent.session_id, state: record.state };
}

/**
 * `alpine export`. With `patch`, the patch text rides along as `patch`: it is
 * not part of export's `--json` output (the CLI writes it to --patch FILE).
 */
export async function exportOperation(
  ctx: OperationContext,
  name: string,
  input: ExportInput,
): Promise<ExportView & { patch?: string }> {
  // A suspended sandbox comes back; from a checkpoint the export needs no runtime.
  if (!input.from_checkpoint) await ctx.orchestrator.resume(name, ctx.progress);
  const result = await ctx.orchestrator.export(name, input, ctx.progress);
  return { ...exportView(name, result), ...(input.patch ? { patch: result.work.patch ?? "" } : {}) };
}

export async function checkpointOperation(ctx: OperationContext, name: string): Promise<CheckpointView> {
  // Resumed (when suspended) inside, after the host's credentials are asked for.
  return checkpointView(name, await ctx.orchestrator.checkpoint(name, ctx.progress, { resume: true }));
}

export async function teardownOperation(
  ctx: OperationContext,
  name: string,
  opts: { force: boolean },
): Promise<TeardownView> {
  return teardownView(name, await ctx.orchestrator.teardown(name, opts, ctx.progress), opts.force);
}

export function gcOperation(ctx: OperationContext, opts: { dryRun: boolean }): Promise<GcView> {
  return ctx.orchestrator.gc(opts);
}
