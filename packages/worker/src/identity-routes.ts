import { AlpineError, toAlpineError } from "@alpine/core";
import type { Hono } from "hono";
import type { Env } from "./env.ts";
import { htmlPage } from "./html.ts";
import {
  auditLine,
  authenticate,
  clearedSessionCookie,
  endSession,
  exchangeGithubCode,
  githubAuthorizeUrl,
  newOAuthState,
  OAUTH_STATE_COOKIE,
  type Principal,
  pollDeviceFlow,
  principalOfGithubToken,
  sameState,
  sessionCookie,
  startDeviceFlow,
  startSession,
} from "./identity.ts";

/**
 * Sign-in and sign-out (docs/cloudflare.md, "People and roles"):
 * - the browser: `GET /auth/github/login` → GitHub's authorize page → `GET /auth/github/callback`,
 *   which trades the code for a GitHub token, asks GitHub who it is (and their orgs), checks the
 *   allow-list and sets the HttpOnly session cookie; the GitHub token is then dropped.
 * - the CLI (`alpine login`): `POST /auth/github/device` starts GitHub's device flow;
 *   `POST /auth/github/device/token` polls it and, once approved, answers a control-plane CLI token.
 * - `POST /auth/logout` revokes the session or CLI token the request carries; `GET /auth/whoami`.
 */

// biome-ignore lint/suspicious/noExplicitAny: the app's variables are app.ts's; these routes use none
type App = Hono<{ Bindings: Env; Variables: any }>;

function stateCookie(request: Request, value: string, maxAge: number): string {
  const secure = new URL(request.url).protocol === "https:" ? "; Secure" : "";
  return `${OAUTH_STATE_COOKIE}=${value}; HttpOnly; SameSite=Lax; Path=/auth/github; Max-Age=${maxAge}${secure}`;
}

function cookieOf(request: Request, name: string): string | null {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=") || null;
  }
  return null;
}

const callbackUrl = (request: Request) => `${new URL(request.url).origin}/auth/github/callback`;

/** Who a GitHub token signs in as; a refused sign-in (not on the allow-list, GitHub failing) is audited. */
async function signingIn(env: Env, githubToken: string, via: Principal["via"]): Promise<Principal> {
  try {
    return await principalOfGithubToken(env, githubToken, via);
  } catch (err) {
    const e = toAlpineError(err);
    const login = typeof e.details?.login === "string" ? e.details.login : "unknown";
    await auditLine(env, {
      principal: `github:${login}`,
      action: "sign_in",
      sandbox: null,
      outcome: e.reason,
    });
    throw err;
  }
}

function publicPrincipal(p: Principal) {
  return { id: p.id, login: p.login, admin: p.admin, via: p.via };
}

export function authRoutes(app: App): void {
  app.get("/auth/github/login", (c) => {
    const state = newOAuthState();
    const headers = new Headers({ location: githubAuthorizeUrl(c.env, callbackUrl(c.req.raw), state) });
    headers.append("set-cookie", stateCookie(c.req.raw, state, 600));
    headers.set("cache-control", "no-store");
    return new Response(null, { status: 302, headers });
  });

  app.get("/auth/github/callback", async (c) => {
    const code = c.req.query("code") ?? "";
    const state = c.req.query("state") ?? "";
    const expected = cookieOf(c.req.raw, OAUTH_STATE_COOKIE) ?? "";
    if (!code || !state || !expected || !(await sameState(state, expected))) {
      return htmlPage(
        400,
        "Sign-in failed",
        "The sign-in link is stale or was not started here. Start again.",
      );
    }
    let principal: Principal;
    let session: Awaited<ReturnType<typeof startSession>>;
    try {
      const githubToken = await exchangeGithubCode(c.env, code, callbackUrl(c.req.raw));
      principal = await signingIn(c.env, githubToken, "session");
      session = await startSession(c.env, principal, "web", githubToken);
    } catch (err) {
      const e = toAlpineError(err);
      return htmlPage(
        e.reason === "forbidden" ? 403 : 401,
        "Not signed in",
        e.reason === "forbidden" ? "This GitHub account may not use this control plane." : e.message,
      );
    }
    await auditLine(c.env, { principal: principal.id, action: "sign_in", sandbox: null, outcome: "ok" });
    const headers = new Headers({ location: "/", "cache-control": "no-store" });
    headers.append("set-cookie", sessionCookie(c.req.raw, session.token, session.maxAge));
    headers.append("set-cookie", stateCookie(c.req.raw, "", 0));
    return new Response(null, { status: 302, headers });
  });

  app.post("/auth/github/device", async (c) => c.json(await startDeviceFlow(c.env)));

  app.post("/auth/github/device/token", async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { device_code?: unknown };
    if (typeof body.device_code !== "string" || !body.device_code) {
      throw new AlpineError("usage_invalid", "device_code is required");
    }
    const polled = await pollDeviceFlow(c.env, body.device_code);
    if ("pending" in polled) return c.json({ pending: polled.pending });
    const principal = await signingIn(c.env, polled.token, "cli");
    const session = await startSession(c.env, principal, "cli", polled.token);
    await auditLine(c.env, { principal: principal.id, action: "sign_in", sandbox: null, outcome: "ok" });
    return c.json(
      { token: session.token, expires_at: session.expiresAt, principal: publicPrincipal(principal) },
      200,
      { "cache-control": "no-store" },
    );
  });

  app.post("/auth/logout", async (c) => {
    const principal = await authenticate(c.env, c.req.raw).catch(() => null);
    const revoked = await endSession(c.env, c.req.raw);
    if (principal) {
      await auditLine(c.env, { principal: principal.id, action: "sign_out", sandbox: null, outcome: "ok" });
    }
    const headers = new Headers({ "cache-control": "no-store" });
    headers.append("set-cookie", clearedSessionCookie(c.req.raw));
    return Response.json({ revoked }, { headers });
  });

  app.get("/auth/whoami", async (c) => {
    const principal = await authenticate(c.env, c.req.raw);
    if (!principal) throw new AlpineError("unauthorized", "not signed in", {});
    return c.json(publicPrincipal(principal), 200, { "cache-control": "no-store" });
  });
}
