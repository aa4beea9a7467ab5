import { AlpineError } from "../errors.ts";
import { overlapsOf, workOf } from "../orchestrator/decisions/overlaps.ts";
import {
  type DiffView,
  type ListItemView,
  type LoginView,
  type LogsView,
  listItemView,
  type StatusView,
  statusView,
  withOverlaps,
} from "../views.ts";
import type { OperationContext } from "./context.ts";

/** The sandbox verbs that read: status, list, diff, login, logs. */

/**
 * `alpine status`: settles what a command that died mid-way left behind,
 * probes sandboxd (within `probeTimeoutMs` when given, so a hung sandboxd is
 * reported unavailable instead of holding the command), and reconciles the
 * record with what the probe saw before reporting.
 */
export async function statusOperation(
  ctx: OperationContext,
  name: string,
  opts: { probeTimeoutMs?: number } = {},
): Promise<StatusView> {
  const o = ctx.orchestrator;
  let record = await o.settle(await o.get(name));
  // The probe and the lease are independent reads.
  const [probe, lease] = await Promise.all([
    o.probe(record, opts.probeTimeoutMs ? { timeoutMs: opts.probeTimeoutMs } : {}),
    o.activeLease(name),
  ]);
  record = await o.reconcile(record, probe);
  // Found to have suspended itself: reported as the stopped runtime it is, not an unreachable one.
  const seen = record.state === "suspended" && probe.state === "unavailable" ? await o.probe(record) : probe;
  // What the probe saw now, else what the record kept (reconcile is skipped while an operation runs).
  const files = seen.status?.workspace?.changed_files.map((f) => f.path) ?? record.changes?.files ?? [];
  const overlaps = overlapsOf({ ...workOf(record), files }, await o.peers());
  return statusView(o, record, seen, lease, ctx.config, ctx.webUrl?.(record), overlaps);
}

/** `alpine list`: every sandbox this orchestrator's store holds, with overlaps from the records alone. */
export async function listOperation(ctx: OperationContext): Promise<ListItemView[]> {
  return withOverlaps((await ctx.orchestrator.listNoticingSuspensions()).map(listItemView));
}

/** `alpine diff`: the agent's changes, untracked files included; no patch text with `stat`. */
export async function diffOperation(
  ctx: OperationContext,
  name: string,
  opts: { stat: boolean },
): Promise<DiffView> {
  const o = ctx.orchestrator;
  const diff = await (await o.connect(await o.resume(name, ctx.progress))).diff({ stat: opts.stat });
  return { name, files: diff.files, patch: opts.stat ? "" : (diff.patch ?? "") };
}

/**
 * `alpine open`: a one-time login link to the web UI, or with `port` to the
 * preview of that port on its own origin (sandboxd mints the code).
 */
export async function loginOperation(
  ctx: OperationContext,
  name: string,
  opts: { port?: number } = {},
): Promise<LoginView> {
  const o = ctx.orchestrator;
  const record = await o.resume(name, ctx.progress);
  if (opts.port !== undefined) {
    if (!ctx.previewUrl)
      throw new AlpineError(
        "usage_invalid",
        ctx.previewsUnavailable ??
          `previews (open --port) are not available for ${record.provider} sandboxes yet`,
        {
          provider: record.provider,
        },
      );
    const { path, expires_at } = await (await o.connect(record)).login({ port: opts.port });
    return { name, web_url: ctx.previewUrl(record, path, opts.port), expires_at, port: opts.port };
  }
  const { code, expires_at } = await (await o.connect(record)).login();
  return { name, web_url: ctx.loginUrl(record, code), expires_at };
}

/** `alpine logs`: lifecycle events after `afterSeq`, and the tail of the runtime's own log. */
export async function logsOperation(
  ctx: OperationContext,
  name: string,
  opts: { tail: number; afterSeq?: number },
): Promise<LogsView> {
  const o = ctx.orchestrator;
  const record = await o.get(name);
  const events = await o.events(name, { afterSeq: opts.afterSeq });
  let lines: string[] = [];
  if (record.runtime) {
    try {
      lines = await ctx.runtimeLogs(record, opts.tail);
    } catch (err) {
      // The events are the record of what happened; a runtime whose log cannot be read
      // (stopped, or its provider is not reachable from here) only lacks the extra lines.
      ctx.progress.warn(`the runtime's log could not be read: ${(err as Error)?.message ?? String(err)}`);
    }
  }
  return { name, events, lines };
}
