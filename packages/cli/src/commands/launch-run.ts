import { spawn } from "node:child_process";
import { openSync } from "node:fs";
import { join } from "node:path";
import { AlpineError, assertRepoReachable, type LaunchView, validateName, validateRef } from "@alpine/core";
import type { Context } from "../context.ts";
import { bold, printJson, stderrProgress } from "../output.ts";
import { releaseEarlySandboxd } from "../providers/early-sandboxd.ts";
import { resolveRepo } from "../repo.ts";
import type { LaunchOptions } from "./launch.ts";

export async function launchCommand(ctx: Context, name: string, opts: LaunchOptions): Promise<void> {
  try {
    await launch(ctx, name, opts);
  } finally {
    // Not left idle beside a long --task wait or a remote launch when the local provider did not use it.
    releaseEarlySandboxd();
  }
}

async function launch(ctx: Context, name: string, opts: LaunchOptions): Promise<void> {
  validateName(name);
  const config = ctx.config;
  const repoInput = opts.repo ?? config.repo.default;
  const repo = repoInput !== undefined ? resolveRepo(repoInput) : undefined;
  if (opts.ref !== undefined) validateRef(opts.ref);
  const input = {
    name,
    repo,
    ref: opts.ref,
    image_profile: opts.imageProfile,
    provider: opts.provider,
    task: opts.task,
    force_recreate: opts.forceRecreate,
    skip_setup: opts.skipSetup,
  };

  // Input first, before anything connects: a path on this machine is out of a remote sandbox's reach.
  assertRepoReachable(opts.provider ?? config.sandbox.provider, repo);

  const { sandboxService } = await import("../service.ts");
  const service = await sandboxService(ctx, { provider: opts.provider });
  const progress = stderrProgress(ctx.globals);
  if (service.remote) {
    // The Durable Object runs the launch; without --wait only its start is awaited.
    render(ctx, await service.launch(input, progress, { wait: opts.wait }));
    if (!opts.wait && !ctx.globals.json)
      process.stderr.write(
        `${name}: launching in the background; follow it with \`alpine status ${name}\`\n`,
      );
    return;
  }

  if (!opts.wait && !process.env.ALPINE_LAUNCH_DETACHED) {
    await launchInBackground(ctx, name);
    return;
  }

  render(ctx, await service.launch(input, progress));
}

function render(ctx: Context, out: LaunchView): void {
  if (ctx.globals.json) {
    printJson(out);
    return;
  }
  const how = out.reused ? "already running" : out.resumed ? "resumed" : "launched";
  process.stdout.write(`${bold(out.name)} ${how} (${out.state}) on ${out.provider}, branch ${out.branch}\n`);
  if (out.task_accepted) process.stdout.write(`task accepted (session ${out.session_id})\n`);
  process.stdout.write(
    `next: alpine status ${out.name} · alpine open ${out.name} · alpine diff ${out.name}\n`,
  );
}

/**
 * --no-wait: a detached `alpine launch` does the work (holding the lease);
 * this process returns once that child has taken the lease, so the caller
 * can follow it with `alpine status`.
 */
async function launchInBackground(ctx: Context, name: string): Promise<void> {
  const orchestrator = await ctx.orchestrator();
  const logPath = join(ctx.home, `launch-${name}.log`);
  const args = process.argv.slice(2).filter((a) => a !== "--no-wait");
  const out = openSync(logPath, "a", 0o600);
  const child = spawn(process.execPath, [process.argv[1]!, ...args], {
    detached: true,
    stdio: ["ignore", out, out],
    env: { ...process.env, ALPINE_LAUNCH_DETACHED: "1" },
  });
  child.unref();
  const deadline = Date.now() + 15_000;
  for (;;) {
    const lease = await orchestrator.lease(name);
    const record = await (await ctx.store()).get(name);
    if (record && (lease?.type === "launch" || (record.state !== "new" && record.state !== "destroyed"))) {
      const out = {
        name,
        id: record.id,
        state: record.state,
        provider: record.provider,
        repo: record.repo,
        ref: record.ref,
        branch: record.branch,
        image_profile: record.image_profile,
        web_url: record.runtime?.web_url ?? null,
        reused: false,
        resumed: false,
        task_accepted: false,
        session_id: null,
        operation_id: lease?.operation_id ?? "",
      };
      if (ctx.globals.json) printJson(out);
      else
        process.stdout.write(
          `${name}: launching in the background; follow it with \`alpine status ${name}\`\n`,
        );
      return;
    }
    if (child.exitCode !== null && child.exitCode !== 0) {
      throw new AlpineError(
        "agent_start_failed",
        `the background launch exited with ${child.exitCode}; see ${logPath}`,
        {
          log: logPath,
        },
      );
    }
    if (Date.now() > deadline) {
      throw new AlpineError("provider_unavailable", `the background launch did not start; see ${logPath}`, {
        log: logPath,
      });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
