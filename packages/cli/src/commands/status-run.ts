import { formatUsage } from "@alpine/core/budget";
import type { Context } from "../context.ts";
import { environmentLines } from "../environment-view.ts";
import { bold, dim, printJson, red, relativeTime, yellow } from "../output.ts";

export async function statusCommand(ctx: Context, name: string): Promise<void> {
  const { sandboxService } = await import("../service.ts");
  const out = await (await sandboxService(ctx)).status(name);
  if (ctx.globals.json) return printJson(out);

  const lines: string[] = [];
  lines.push(`${bold(out.name)}  ${out.state}  ${dim(`${out.provider} · ${out.id}`)}`);
  lines.push(`  repo      ${out.identity.repo}${out.identity.ref ? ` @ ${out.identity.ref}` : ""}`);
  if (out.runtime.probe_state === "unavailable") {
    lines.push(`  runtime   unavailable: ${out.error?.error ?? "no answer"}`);
    lines.push(`            run \`alpine launch ${name}\` to recover it`);
  } else if (out.runtime.probe_state === "ok") {
    lines.push(
      `  runtime   ${out.runtime.phase}, agent ${out.runtime.agent}, OpenCode ${out.runtime.opencode_version ?? "?"}` +
        (out.runtime.opencode_restarts ? ` (${out.runtime.opencode_restarts} restarts)` : ""),
    );
    if (out.runtime.agent_reason) lines.push(`  agent     ${out.runtime.agent}: ${out.runtime.agent_reason}`);
    const e = out.runtime.egress;
    if (e) {
      const how =
        e.policy === "open"
          ? "open (the host's network)"
          : `allow-list${e.enforced ? "" : " (not enforced)"}`;
      const refused = e.refused ? `, ${e.refused} refused: ${e.refused_hosts.join(" ")}` : "";
      lines.push(`  network   ${how}, ${e.allowed} allowed${refused}`);
    }
    const env = out.runtime.environment;
    if (env && (env.effective.setup.length || env.effective.start.length || env.effective.notices.length)) {
      const setup = env.setup;
      lines.push(
        `  setup     ${setup.state}${setup.ms !== null ? ` in ${(setup.ms / 1000).toFixed(1)} s` : ""}${setup.cache_note ? dim(` (${setup.cache_note})`) : ""}`,
      );
      for (const s of env.services)
        lines.push(
          `  service   ${s.command}: ${s.state}${s.restarts ? `, ${s.restarts} restarts` : ""}${s.last_exit_code !== null ? `, last exit ${s.last_exit_code}` : ""}`,
        );
      lines.push("  environment");
      lines.push(...environmentLines(env.effective, "            "));
    }
    for (const p of out.runtime.ports)
      lines.push(
        `  port      ${p.port} ${p.listening ? "listening" : "not listening"}${p.declared ? " (declared)" : ""}: alpine open ${name} --port ${p.port}`,
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
  for (const o of out.overlaps ?? [])
    lines.push(`  overlap   ${yellow(`with ${o.name}: ${o.files.join(", ")}`)}`);
  if (out.durability)
    lines.push(
      `  saved     checkpoint ${out.durability.checkpoint_id} (${relativeTime(out.durability.created_at)})`,
    );
  if (out.export)
    lines.push(
      `  exported  ${out.export.commit.slice(0, 10)} → ${out.export.branch}${out.export.pr_url ? ` ${out.export.pr_url}` : ""}`,
    );
  if (out.runtime.probe_state !== "ok" && out.runtime.agent_reason)
    lines.push(`  agent     ${out.runtime.agent} (last seen): ${out.runtime.agent_reason}`);
  if (out.task)
    lines.push(
      `  task      ${out.task.prompt_summary} (${out.task.state}${out.task.usage ? `, ${formatUsage(out.task.usage)}` : ""})`,
    );
  if (out.runtime.usage) lines.push(`  spent     ${formatUsage(out.runtime.usage)} (all sessions)`);
  if (out.operation)
    lines.push(
      `  operation ${out.operation.type} by ${out.operation.holder} since ${out.operation.acquired_at}`,
    );
  const c = out.confinement;
  if (c?.boundary === "none") lines.push(`  confined  ${red(c.warning ?? "no")}`);
  else if (c?.boundary === "container")
    lines.push("  confined  container: sees its image and its own volume only");
  else if (c?.read_only && c.read_write) {
    const more = c.read_only.length > 2 ? ` and ${c.read_only.length - 2} more (--json lists them)` : "";
    lines.push(
      `  confined  bubblewrap: reads ${c.read_only.slice(0, 2).join(", ")}${more}; writes its workspace, home and /tmp`,
    );
  }
  lines.push(`  activity  ${relativeTime(out.last_activity)}`);
  if (out.teardown.blockers.length) lines.push(`  teardown  blocked by: ${out.teardown.blockers.join(", ")}`);
  if (out.error) lines.push(`  error     ${out.error.error} (${out.error.reason_code})`);
  process.stdout.write(`${lines.join("\n")}\n`);
}
