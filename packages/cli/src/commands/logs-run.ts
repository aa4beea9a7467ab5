import { AlpineError, type AuditEntryView, type StoredEvent } from "@alpine/core";
import type { Context } from "../context.ts";
import { dim, printJson } from "../output.ts";

const formatEvent = (e: StoredEvent) =>
  e.kind === "transition"
    ? `${dim(e.at)} ${e.from} → ${e.to}  ${e.reason}${e.operation_id ? dim(` (${e.operation_id})`) : ""}`
    : `${dim(e.at)} ${e.kind}: ${e.reason}`;

export async function logsCommand(
  ctx: Context,
  name: string | undefined,
  opts: { follow: boolean; tail: number; audit?: boolean },
): Promise<void> {
  const { sandboxService } = await import("../service.ts");
  const service = await sandboxService(ctx);
  if (opts.audit) return auditLog(ctx, service, name, opts.tail);
  // An empty name is a name, and refused as such by the service (name_invalid).
  if (name === undefined)
    throw new AlpineError("usage_invalid", "alpine logs needs a sandbox name (or --audit)", {});
  const { events, lines } = await service.logs(name, { tail: opts.tail });
  if (ctx.globals.json && !opts.follow) return printJson({ name, events, lines });

  const emitEvent = (e: StoredEvent) =>
    process.stdout.write(ctx.globals.json ? `${JSON.stringify({ event: e })}\n` : `${formatEvent(e)}\n`);
  const emitLine = (l: string) =>
    process.stdout.write(ctx.globals.json ? `${JSON.stringify({ line: l })}\n` : `${l}\n`);
  events.forEach(emitEvent);
  if (lines.length && !ctx.globals.json) process.stdout.write(`${dim("--- runtime log ---")}\n`);
  lines.forEach(emitLine);
  if (!opts.follow) return;

  let lastSeq = events.at(-1)?.seq ?? 0;
  let lastLine = lines.at(-1);
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const next = await service.logs(name, { tail: opts.tail, afterSeq: lastSeq });
    for (const e of next.events) {
      emitEvent(e);
      lastSeq = e.seq ?? lastSeq;
    }
    const now = next.lines;
    // The provider returns a tail; print what follows the last line we printed.
    const idx = lastLine === undefined ? -1 : now.lastIndexOf(lastLine);
    const fresh = idx >= 0 ? now.slice(idx + 1) : now;
    fresh.forEach(emitLine);
    if (fresh.length) lastLine = fresh.at(-1);
  }
}

/** `alpine logs --audit [name]`: the control plane's audit log (its `audit` route), newest last. */
async function auditLog(
  ctx: Context,
  service: import("../service.ts").SandboxService,
  name: string | undefined,
  tail: number,
): Promise<void> {
  const remote = service as Partial<import("../remote/service.ts").RemoteSandboxService>;
  if (!remote.audit) {
    throw new AlpineError(
      "usage_invalid",
      "the audit log is the Cloudflare control plane's (sandbox.provider: cloudflare); local sandboxes have one user",
      {},
    );
  }
  const lines: AuditEntryView[] = (await remote.audit(Math.min(1000, Math.max(1, tail)))).filter(
    (l) => !name || l.sandbox === name,
  );
  if (ctx.globals.json) return printJson(lines);
  for (const l of lines) {
    process.stdout.write(
      `${dim(l.at)} ${l.principal} ${l.action}${l.sandbox ? ` ${l.sandbox}` : ""} ${l.outcome === "ok" ? "ok" : `failed: ${l.outcome}`}\n`,
    );
  }
}
