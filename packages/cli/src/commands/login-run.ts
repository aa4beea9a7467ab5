import { AlpineError, errorFromResponse } from "@alpine/core";
import type { Context } from "../context.ts";
import { printJson, stderrProgress } from "../output.ts";
import { readSession, removeSession, writeSession } from "../remote/session.ts";

/** The control plane's origin, from sandbox.control_plane_url. */
function controlPlaneUrl(ctx: Context): string {
  const url = ctx.config.sandbox.control_plane_url;
  if (!url) {
    throw new AlpineError("config_invalid", "`alpine login` needs sandbox.control_plane_url", {
      key: "sandbox.control_plane_url",
      allowed: "the URL of your control plane (alpine cloud deploy prints it)",
    });
  }
  return url.replace(/\/+$/, "");
}

async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new AlpineError("control_plane_unreachable", `could not reach the control plane: ${String(err)}`, {
      url: new URL(url).origin,
    });
  }
  if (!res.ok) {
    throw await errorFromResponse(res, {
      unknownReason: "control_plane_error",
      fallback: (status) =>
        new AlpineError("control_plane_error", `the control plane answered ${status}`, {}),
    });
  }
  return (await res.json()) as Record<string, unknown>;
}

/** `alpine login`: GitHub's device flow through the control plane; the CLI token it answers is stored 0600. */
export async function loginCommand(ctx: Context): Promise<void> {
  const url = controlPlaneUrl(ctx);
  const progress = stderrProgress(ctx.globals);
  const start = await post(`${url}/auth/github/device`, {});
  const deviceCode = String(start.device_code);
  // What the person must do is printed whatever the output mode: nothing happens until they do it.
  process.stderr.write(
    `Open ${String(start.verification_uri)} and enter the code ${String(start.user_code)}\n`,
  );
  let interval = Math.max(1, Number(start.interval) || 5) * 1000;
  const deadline = Date.now() + (Number(start.expires_in) || 900) * 1000;
  for (;;) {
    if (Date.now() > deadline) {
      throw new AlpineError(
        "unauthorized",
        "the sign-in code expired before it was entered; run `alpine login` again",
        {},
      );
    }
    await new Promise((r) => setTimeout(r, interval));
    const polled = await post(`${url}/auth/github/device/token`, { device_code: deviceCode });
    if (polled.pending === "slow_down") interval += 5000;
    if (polled.pending) {
      progress.step("waiting for the code to be entered at GitHub");
      continue;
    }
    const principal = polled.principal as { id: string; login: string; admin: boolean; via: string };
    const file = writeSession(ctx.home, {
      url,
      token: String(polled.token),
      expires_at: String(polled.expires_at),
      principal,
    });
    const out = { url, principal, expires_at: String(polled.expires_at), token_file: file };
    if (ctx.globals.json) return printJson(out);
    process.stdout.write(
      `signed in to ${url} as ${principal.login}${principal.admin ? " (admin)" : ""} until ${out.expires_at}\n`,
    );
    return;
  }
}

/** `alpine logout`: revokes the stored CLI token on the control plane, then forgets it. */
export async function logoutCommand(ctx: Context): Promise<void> {
  const url = controlPlaneUrl(ctx);
  const stored = readSession(ctx.home, url);
  let revoked = false;
  if (stored) {
    const answer = await post(`${url}/auth/logout`, {}, { authorization: `Bearer ${stored.token}` });
    revoked = answer.revoked === true;
  }
  removeSession(ctx.home, url);
  if (ctx.globals.json) return printJson({ url, revoked });
  process.stdout.write(stored ? `signed out of ${url}\n` : `not signed in to ${url}\n`);
}
