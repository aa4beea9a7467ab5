import { AlpineError, type SessionEntryView } from "@alpine/core";
import type { Context } from "../context.ts";
import { dim, printJson } from "../output.ts";
import type { RemoteSandboxService } from "../remote/service.ts";

/** The Cloudflare control plane's service; sessions are its alone (local sandboxes have one user). */
async function remoteService(ctx: Context): Promise<RemoteSandboxService> {
  const { sandboxService } = await import("../service.ts");
  const service = (await sandboxService(ctx)) as Partial<RemoteSandboxService>;
  if (!service.sessions || !service.revokeSessions) {
    throw new AlpineError(
      "usage_invalid",
      "sessions are the Cloudflare control plane's (sandbox.provider: cloudflare); local sandboxes have one user",
      {},
    );
  }
  return service as RemoteSandboxService;
}

/** `alpine sessions ls [--user LOGIN]`. */
export async function sessionsLs(ctx: Context, opts: { user?: string }): Promise<void> {
  const sessions: SessionEntryView[] = await (await remoteService(ctx)).sessions(opts.user);
  if (ctx.globals.json) return printJson(sessions);
  if (!sessions.length) {
    process.stdout.write("no sessions\n");
    return;
  }
  for (const s of sessions) {
    const state = s.revoked_at ? `revoked ${s.revoked_at}` : s.live ? `expires ${s.expires_at}` : "expired";
    process.stdout.write(
      `${s.id}  ${s.principal}  ${s.kind.padEnd(3)}  ${dim(`created ${s.created_at}`)}  ${state}\n`,
    );
  }
}

/** `alpine sessions revoke ID | --user LOGIN`. */
export async function sessionsRevoke(
  ctx: Context,
  id: string | undefined,
  opts: { user?: string },
): Promise<void> {
  if ((id === undefined) === (opts.user === undefined)) {
    throw new AlpineError(
      "usage_invalid",
      "give a session id or --user LOGIN (one of the two): `alpine sessions ls` lists them",
      {},
    );
  }
  const out = await (await remoteService(ctx)).revokeSessions(
    id !== undefined ? { id } : { user: opts.user ?? "" },
  );
  if (ctx.globals.json) return printJson(out);
  process.stdout.write(
    out.revoked.length
      ? `revoked ${out.revoked.length} session(s): ${out.revoked.join(", ")}\n`
      : "no live session to revoke\n",
  );
}
