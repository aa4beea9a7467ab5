import {
  AlpineError,
  type CheckpointView,
  type DiffView,
  type ExportView,
  type LogsView,
  type StatusView,
  type TaskView,
  type TeardownView,
  validateName,
} from "@alpine/core";
import {
  cookieValue,
  DASHBOARD_COOKIE,
  DASHBOARD_SESSION_TTL_MS,
  type DashboardBackend,
  handleDashboard,
  hmac,
  LOGIN_CODE_TTL_MS,
  randomToken,
  sameSecret,
} from "@alpine/core/dashboard";
import type { Context, Hono } from "hono";
import type { Env } from "./env.ts";
import { ADMIN_PRINCIPAL, authenticate as identityOf, PRINCIPAL_HEADER, type Principal } from "./identity.ts";

/**
 * The dashboard (docs/dashboard.md) at `/` of the control plane: core's pages and handler over
 * the sandboxes' Durable Objects, which run the same operations as the /v1 routes. Who may use
 * it is `authenticate`'s word (contract 3): until identity's sessions, the shared admin token.
 */

// biome-ignore lint/suspicious/noExplicitAny: the app's Variables differ; only Bindings is read here
type WorkerContext = Context<{ Bindings: Env; Variables: any }>;
export type DashboardAuthenticate = (c: WorkerContext) => Promise<Principal | null>;

/** The cookie of the one-origin UI fallback (app.ts's UI_COOKIE): such a request is the web UI's. */
const UI_COOKIE = "alpine_ui";

/** Calls a sandbox's Durable Object as the /v1 routes do (app.ts `toSandbox`), one JSON answer. */
async function callSandbox<T>(
  env: Env,
  origin: string,
  principal: Principal,
  name: string,
  op: string,
  method: "GET" | "POST",
  input: Record<string, unknown> = {},
): Promise<T> {
  const query = method === "GET" ? `?${new URLSearchParams(input as Record<string, string>)}` : "";
  const res = await env.SANDBOX.getByName(validateName(name)).fetch(
    new Request(`https://sandbox-object/${op}${query}`, {
      method,
      headers: {
        "x-alpine-name": name,
        "x-alpine-origin": origin,
        // The sandbox's object lets its owner or an admin act (identity.ts), as for a /v1 route.
        [PRINCIPAL_HEADER]: JSON.stringify(principal),
        accept: "application/json",
        "content-type": "application/json",
      },
      body: method === "POST" ? JSON.stringify(input) : undefined,
    }),
  );
  const body = await res.json();
  if (!res.ok) throw AlpineError.fromJSON(body);
  return body as T;
}

/**
 * The control plane's sandboxes. A mutating request carries no config: each object runs with the
 * config the CLI last sent it (kept-config.ts); an export carries no git credentials either (the
 * control plane never stores them), so it pushes only where the remote needs none.
 */
export function workerBackend(env: Env, origin: string, principal: Principal): DashboardBackend {
  const call = <T>(name: string, op: string, method: "GET" | "POST", input?: Record<string, unknown>) =>
    callSandbox<T>(env, origin, principal, name, op, method, input);
  return {
    // The caller's own sandboxes; an admin sees every one (as `alpine list --all`).
    list: () => env.REGISTRY.getByName("registry").listFor(principal, principal.admin),
    status: (name) => call<StatusView>(name, "status", "GET"),
    diff: (name) => call<DiffView>(name, "diff", "GET", { stat: "false" }),
    logs: (name) => call<LogsView>(name, "logs", "GET", { tail: "0" }),
    login: (name) => call<{ web_url: string }>(name, "login", "POST"),
    task: (name, prompt) => call<TaskView>(name, "task", "POST", { prompt }),
    checkpoint: (name) => call<CheckpointView>(name, "checkpoint", "POST"),
    export: (name, input) => call<ExportView>(name, "export", "POST", input),
    teardown: (name, opts) => call<TeardownView>(name, "teardown", "POST", opts),
  };
}

const LOGIN_PURPOSE = "alpine-dashboard-login";
const SESSION_PURPOSE = "alpine-dashboard-session";

/** `<expiry ms>.<nonce>.<HMAC under the admin token>`: a link or a session the Worker can check without storage. */
async function signed(token: string, purpose: string, ttlMs: number): Promise<string> {
  const body = `${Date.now() + ttlMs}.${randomToken(18)}`;
  return `${body}.${await hmac(token, `${purpose}\n${body}`)}`;
}

async function verified(
  token: string,
  purpose: string,
  value: string,
): Promise<{ exp: number; body: string } | null> {
  const m = /^(\d{1,16})\.([A-Za-z0-9_-]{8,64})\.([A-Za-z0-9_-]{20,100})$/.exec(value);
  if (!m) return null;
  const body = `${m[1]}.${m[2]}`;
  if (!(await sameSecret(m[3]!, await hmac(token, `${purpose}\n${body}`)))) return null;
  const exp = Number(m[1]);
  return exp > Date.now() ? { exp, body } : null;
}

function adminToken(env: Env): string {
  const token = env.ALPINE_CONTROL_PLANE_TOKEN;
  if (!token || token.length < 16)
    throw new AlpineError(
      "control_plane_error",
      "the control plane has no ALPINE_CONTROL_PLANE_TOKEN secret (at least 16 characters)",
    );
  return token;
}

/**
 * Who uses the dashboard: whoever identity.ts knows (a GitHub sign-in's session cookie, a
 * Cloudflare Access JWT, the shared token or a CLI token as a bearer header), or an admin holding
 * the dashboard's own HttpOnly cookie that a one-time link minted with the shared token set.
 */
export const dashboardAuthenticate: DashboardAuthenticate = async (c) => {
  const known = await identityOf(c.env, c.req.raw);
  if (known) return known;
  const cookie = cookieValue(c.req.header("cookie") ?? null, DASHBOARD_COOKIE);
  if (cookie && (await verified(adminToken(c.env), SESSION_PURPOSE, cookie))) return ADMIN_PRINCIPAL;
  return null;
};

/**
 * Mounts the dashboard: `POST /dashboard/login-link` (bearer admin token) mints a one-time link,
 * `GET /login/<code>` trades it once for the session cookie, and the pages answer at `/`,
 * `/sandboxes/<name>`, `/api/…`. A request carrying the web UI's routing cookie is left to the
 * UI proxy that follows (the one-origin fallback keeps working).
 */
// biome-ignore lint/suspicious/noExplicitAny: mounted on the app whatever its Variables
export function mountDashboard(
  app: Hono<{ Bindings: Env; Variables: any }>,
  authenticate: DashboardAuthenticate,
): void {
  app.post("/dashboard/login-link", async (c) => {
    const token = adminToken(c.env);
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
    if (!(await sameSecret(bearer, token)) || !bearer)
      throw new AlpineError("unauthorized", "missing or wrong control-plane token", {});
    const code = await signed(token, LOGIN_PURPOSE, LOGIN_CODE_TTL_MS);
    const origin = new URL(c.req.url).origin;
    return c.json(
      {
        login_url: `${origin}/login/${code}`,
        expires_at: new Date(Number(code.split(".")[0])).toISOString(),
      },
      200,
      { "cache-control": "no-store" },
    );
  });

  app.use("*", async (c, next) => {
    if (cookieValue(c.req.header("cookie") ?? null, UI_COOKIE)) return next();
    const token = c.env.ALPINE_CONTROL_PLANE_TOKEN;
    // Without the token nobody can sign in: the control plane answers as it did before the
    // dashboard (its /v1 routes say what is missing).
    if (!token || token.length < 16) return next();
    const origin = new URL(c.req.url).origin;
    const principal = await authenticate(c);
    const response = await handleDashboard(c.req.raw, {
      // Built for the signed-in caller only: the handler answers 401 before it needs one.
      backend: () => workerBackend(c.env, origin, principal as Principal),
      authenticate: async () => principal,
      redeem: async (code) => {
        const ok = await verified(token, LOGIN_PURPOSE, code);
        if (!ok) return null;
        // Once: the registry remembers the links used until they expire.
        if (!(await c.env.REGISTRY.getByName("registry").consumeOnce(ok.body, ok.exp))) return null;
        return signed(token, SESSION_PURPOSE, DASHBOARD_SESSION_TTL_MS);
      },
      csrfKey: await hmac(token, "alpine-dashboard-csrf-key"),
      brand: "alpine control plane",
      signInHint:
        'This is the alpine control plane. Run `alpine open <name>` for a one-time login link to a sandbox\'s web UI; for this dashboard, mint one with the control-plane token: curl -X POST -H "Authorization: Bearer $ALPINE_CONTROL_PLANE_TOKEN" <this origin>/dashboard/login-link',
    });
    return response ?? next();
  });
}
