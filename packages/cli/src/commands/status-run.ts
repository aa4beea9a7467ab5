import type { Context } from "../context.ts";
import { bold, dim, printJson, relativeTime } from "../output.ts";

export async function statusCommand(ctx: Context, name: string): Promise<void> {
  const orchestrator = await ctx.orchestrator();
  // A command that died mid-way left a state that is no longer true: settle it before reporting.
  let record = await orchestrator.settle(await orchestrator.get(name));
  const probe = await orchestrator.probe(record);
  record = await orchestrator.reconcile(record, probe);
  const lease = await orchestrator.activeLease(name);
  const s = probe.status;
  const out = {
    name: record.name,
    id: record.id,
    state: record.state,
    provider: record.provider,
    identity: { repo: record.repo, ref: record.ref, image_profile: record.image_profile },
    runtime: {
      web_url: record.runtime?.web_url ?? null,
      probe_state: probe.state,
      probe_at: probe.at,
      phase: s?.phase ?? null,
      agent: s?.agent.state ?? (probe.state === "ok" ? "unknown" : record.agent),
      opencode_version: s?.opencode.version ?? null,
      opencode_restarts: s?.opencode.restarts ?? null,
    },
    workspace: s?.workspace
      ? {
          branch: s.workspace.branch,
          head: s.workspace.head,
          dirty: s.workspace.dirty,
          changed_files: s.workspace.changed_files,
          ahead: s.workspace.ahead,
        }
      : null,
    durability: record.checkpoint
      ? {
          checkpoint_id: record.checkpoint.id,
          verified: record.checkpoint.verified,
          content_hash: record.checkpoint.content_hash,
          created_at: record.checkpoint.created_at,
        }
      : null,
    export: record.export
      ? {
          branch: record.export.branch,
          commit: record.export.commit,
          pushed_at: record.export.pushed_at,
          pr_url: record.export.pr_url,
        }
      : null,
    task: record.task
      ? { ...record.task, state: s?.task?.session_id === record.task.session_id ? s.task.state : "unknown" }
      : null,
    operation: lease
      ? {
          id: lease.operation_id,
          type: lease.type,
          holder: lease.holder,
          acquired_at: lease.acquired_at,
          expires_at: lease.expires_at,
        }
      : null,
    teardown: {
      auto_teardown: ctx.config.sandbox.auto_teardown,
      blockers: orchestrator.blockers(record, probe, lease),
    },
    last_activity: s?.agent.last_activity ?? record.last_activity,
    error: probe.state === "unavailable" && probe.error ? probe.error.toJSON() : record.error,
  };
  if (ctx.globals.json) return printJson(out);

  const lines: string[] = [];
  lines.push(`${bold(out.name)}  ${out.state}  ${dim(`${out.provider} · ${out.id}`)}`);
  lines.push(`  repo      ${out.identity.repo}${out.identity.ref ? ` @ ${out.identity.ref}` : ""}`);
  if (out.runtime.probe_state === "unavailable") {
    lines.push(`  runtime   unavailable: ${probe.error?.message ?? "no answer"}`);
    lines.push(`            run \`alpine launch ${name}\` to recover it`);
  } else if (out.runtime.probe_state === "ok") {
    lines.push(
      `  runtime   ${out.runtime.phase}, agent ${out.runtime.agent}, OpenCode ${out.runtime.opencode_version ?? "?"}` +
        (out.runtime.opencode_restarts ? ` (${out.runtime.opencode_restarts} restarts)` : ""),
    );
  }
  if (out.workspace) {
    const w = out.workspace;
    lines.push(
      `  workspace ${w.branch} @ ${w.head?.slice(0, 10) ?? "-"}${w.dirty ? ", uncommitted changes" : ""}${w.ahead ? `, ${w.ahead} commit(s) ahead` : ""}`,
    );
    for (const f of w.changed_files.slice(0, 20)) lines.push(`            ${f.status.padEnd(9)} ${f.path}`);
    if (w.changed_files.length > 20) lines.push(`            … ${w.changed_files.length - 20} more`);
  }
  if (out.durability)
    lines.push(
      `  saved     checkpoint ${out.durability.checkpoint_id} (${relativeTime(out.durability.created_at)})`,
    );
  if (out.export)
    lines.push(
      `  exported  ${out.export.commit.slice(0, 10)} → ${out.export.branch}${out.export.pr_url ? ` ${out.export.pr_url}` : ""}`,
    );
  if (out.task) lines.push(`  task      ${out.task.prompt_summary} (${out.task.state})`);
  if (out.operation)
    lines.push(
      `  operation ${out.operation.type} by ${out.operation.holder} since ${out.operation.acquired_at}`,
    );
  lines.push(`  activity  ${relativeTime(out.last_activity)}`);
  if (out.teardown.blockers.length) lines.push(`  teardown  blocked by: ${out.teardown.blockers.join(", ")}`);
  if (out.error) lines.push(`  error     ${out.error.error} (${out.error.reason_code})`);
  process.stdout.write(`${lines.join("\n")}\n`);
}
