import { httpStatusOf } from "../control-plane-api.ts";
import { AlpineError, toAlpineError } from "../errors.ts";
import { validateName } from "../names.ts";
import type {
  CheckpointView,
  DiffView,
  ExportView,
  ListItemView,
  LogsView,
  StatusView,
  TaskView,
  TeardownView,
} from "../views.ts";
import { DASHBOARD_CSS, DASHBOARD_JS } from "./assets.ts";
import {
  esc,
  layout,
  listBody,
  listTable,
  messagePage,
  type SandboxPageData,
  sandboxBody,
  sandboxSections,
} from "./pages.ts";
import { cookieValue, DASHBOARD_COOKIE, hmac, sameSecret, sessionCookie } from "./session.ts";

/**
 * The dashboard as one fetch-style handler (a web `Request` in, a `Response` out), shared by
 * `alpine dashboard` (node:http in the CLI) and the control plane's Worker (hono). Everything it
 * does to a sandbox goes through the backend: the same operations, with the same gates, as the
 * CLI's verbs (a teardown without `force` is refused exactly as `alpine teardown` refuses).
 */

/** The operations the dashboard calls: the CLI's SandboxService, or the control plane's routes. */
export interface DashboardBackend {
  list(): Promise<ListItemView[]>;
  status(name: string): Promise<StatusView>;
  diff(name: string): Promise<DiffView>;
  logs(name: string): Promise<LogsView>;
  login(name: string): Promise<{ web_url: string }>;
  task(name: string, prompt: string): Promise<TaskView>;
  checkpoint(name: string): Promise<CheckpointView>;
  export(name: string, input: { branch?: string; pr?: boolean }): Promise<ExportView>;
  teardown(name: string, opts: { force: boolean }): Promise<TeardownView>;
}

/** Who is asking (contract 3: identity's Principal narrows to this). */
export interface DashboardPrincipal {
  id: string;
  admin: boolean;
}

export interface DashboardOptions {
  /** The sandboxes, or what the signed-in caller may see of them (a multi-user control plane). */
  backend: DashboardBackend | ((principal: DashboardPrincipal) => DashboardBackend);
  /** The caller, or null: not signed in (the dashboard's cookie, a bearer token, identity's session). */
  authenticate(request: Request): Promise<DashboardPrincipal | null>;
  /** Trades a one-time login code for a session cookie value (null: unknown, used or expired). */
  redeem?(code: string): Promise<string | null>;
  /** The HMAC key of CSRF tokens: a secret of this server. */
  csrfKey: string;
  /** Shown in the header and titles, e.g. "alpine (local)". */
  brand: string;
  /** What a signed-out visitor is told to do. */
  signInHint: string;
  /** How often pages poll for live updates (default 2500 ms). */
  pollMs?: number;
}

const NO_STORE = { "cache-control": "no-store" };
/** Our own files only: no inline script or style, no framing, forms post only here. */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

function html(status: number, body: string, extra: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      ...NO_STORE,
      ...extra,
    },
  });
}

function json(status: number, value: unknown): Response {
  return Response.json(value, { status, headers: { ...NO_STORE, "x-content-type-options": "nosniff" } });
}

const REFUSED_WITHOUT_FORCE = new Set(["teardown_requires_force", "teardown_blocked"]);

function errorJson(err: unknown): { status: number; body: Record<string, unknown> } {
  const e = toAlpineError(err);
  // An error that names its own status (an unknown action: 404) keeps it, as sandboxd's server does.
  const own = (e as AlpineError & { httpStatus?: unknown }).httpStatus;
  return {
    status: typeof own === "number" ? own : httpStatusOf(e.reason, e.exitCode),
    body: { ...e.toJSON(), can_force: REFUSED_WITHOUT_FORCE.has(e.reason) },
  };
}

/** The CSRF token of a signed-in browser: bound to who it is and to its session cookie. */
export function csrfToken(key: string, principal: DashboardPrincipal, request: Request): Promise<string> {
  const session = cookieValue(request.headers.get("cookie"), DASHBOARD_COOKIE) ?? "";
  return hmac(key, `alpine-dashboard-csrf\n${principal.id}\n${session}`);
}

/**
 * A POST is ours only when the browser says it comes from this origin (Origin, or
 * Sec-Fetch-Site where Origin is absent) and carries the token our pages hold.
 */
async function csrfOk(request: Request, form: URLSearchParams, expected: string): Promise<boolean> {
  const origin = request.headers.get("origin");
  const own = new URL(request.url).origin;
  const sameOrigin = origin ? origin === own : request.headers.get("sec-fetch-site") === "same-origin";
  const given = request.headers.get("x-alpine-csrf") ?? form.get("csrf") ?? "";
  return sameOrigin && given !== "" && (await sameSecret(given, expected));
}

function sandboxPath(path: string): { name: string; action?: string } | null {
  const m = /^\/sandboxes\/([^/]+)(?:\/([a-z]+))?$/.exec(path);
  if (!m) return null;
  let name: string;
  try {
    name = decodeURIComponent(m[1]!);
  } catch {
    // Malformed percent-encoding names no sandbox.
    return null;
  }
  return { name, action: m[2] };
}

async function pageData(backend: DashboardBackend, name: string): Promise<SandboxPageData> {
  const status = await backend.status(name);
  // Reading the diff of a sandbox that does not run would resume it: only a running one is read.
  const runs = status.state === "running" || status.state === "completed";
  const [logs, diff] = await Promise.all([
    backend.logs(name),
    runs ? backend.diff(name).catch((err) => toAlpineError(err).toJSON()) : Promise.resolve(null),
  ]);
  return { status, logs, diff };
}

/** Carries out one action through the backend; the message the page shows. */
async function act(
  backend: DashboardBackend,
  name: string,
  action: string,
  form: URLSearchParams,
): Promise<Record<string, unknown>> {
  switch (action) {
    case "open": {
      const { web_url } = await backend.login(name);
      return { message: "Login link minted.", web_url };
    }
    case "task": {
      const prompt = (form.get("prompt") ?? "").trim();
      if (!prompt) throw new AlpineError("usage_invalid", "the task needs a prompt");
      const out = await backend.task(name, prompt);
      return { message: `Task sent (session ${out.session_id}); the sandbox is ${out.state}.`, ...out };
    }
    case "checkpoint": {
      const out = await backend.checkpoint(name);
      return { message: `Checkpoint ${out.checkpoint_id} saved and verified.`, ...out };
    }
    case "export": {
      const branch = (form.get("branch") ?? "").trim() || undefined;
      const pr = form.get("pr") === "1";
      const out = await backend.export(name, { ...(branch ? { branch } : {}), pr });
      const where = out.pr_url
        ? `pull request ${out.pr_url}`
        : out.pushed
          ? `branch ${out.branch}`
          : "nowhere";
      return { message: `Exported ${out.files_changed} file(s) to ${where}.`, ...out };
    }
    case "teardown": {
      const force = form.get("force") === "1";
      const out = await backend.teardown(name, { force });
      return {
        message: out.destroyed ? `${name} torn down (${out.state}).` : `${name} was already ${out.state}.`,
        gone: true,
        ...out,
      };
    }
    default:
      throw Object.assign(new AlpineError("usage_invalid", `no such action: ${action}`), { httpStatus: 404 });
  }
}

/**
 * Answers a dashboard request, or returns null for a path that is not the dashboard's (the
 * Worker then routes it elsewhere).
 */
export async function handleDashboard(request: Request, opts: DashboardOptions): Promise<Response | null> {
  const url = new URL(request.url);
  const path = url.pathname;
  const method = request.method;
  if (method === "GET" && path === "/dashboard.css")
    return new Response(DASHBOARD_CSS, {
      headers: { "content-type": "text/css; charset=utf-8", "cache-control": "max-age=300" },
    });
  if (method === "GET" && path === "/dashboard.js")
    return new Response(DASHBOARD_JS, {
      headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "max-age=300" },
    });

  const login = /^\/login\/([A-Za-z0-9._-]{16,200})$/.exec(path);
  if (method === "GET" && login && opts.redeem) {
    const session = await opts.redeem(login[1]!);
    if (!session)
      return html(
        401,
        messagePage(
          "Link used or expired",
          `This login link was already used or has expired. ${opts.signInHint}`,
        ),
      );
    return new Response(null, {
      status: 303,
      headers: {
        location: "/",
        "set-cookie": sessionCookie(session, url.protocol === "https:"),
        ...NO_STORE,
      },
    });
  }

  const isApi = path === "/api/list" || path.startsWith("/api/sandboxes/");
  const target = isApi ? null : sandboxPath(path);
  if (!(path === "/" || isApi || target)) return null;

  const principal = await opts.authenticate(request);
  const wantsJson = isApi || (request.headers.get("accept") ?? "").includes("application/json");
  if (!principal) {
    const e = new AlpineError("unauthorized", `not signed in to the dashboard. ${opts.signInHint}`);
    return wantsJson ? json(401, e.toJSON()) : html(401, messagePage("Not signed in", opts.signInHint));
  }
  const csrf = await csrfToken(opts.csrfKey, principal, request);
  const backend = typeof opts.backend === "function" ? opts.backend(principal) : opts.backend;
  const page = (heading: string, body: string, poll: string) =>
    layout({
      title: `${heading} · ${opts.brand}`,
      heading,
      brand: opts.brand,
      csrf,
      poll,
      intervalMs: opts.pollMs,
      body,
    });

  try {
    if (method === "GET" && path === "/") {
      return html(200, page("Sandboxes", listBody(await backend.list()), "/api/list"));
    }
    if (method === "GET" && path === "/api/list") {
      return json(200, { sections: { "live-list": listTable(await backend.list()) } });
    }
    if (method === "GET" && path.startsWith("/api/sandboxes/")) {
      const t = sandboxPath(path.slice("/api".length));
      if (!t || t.action) return null;
      return json(200, { sections: sandboxSections(await pageData(backend, validateName(t.name))) });
    }
    if (method === "GET" && target && !target.action) {
      const name = validateName(target.name);
      const data = await pageData(backend, name);
      return html(200, page(name, sandboxBody(data, csrf), `/api/sandboxes/${encodeURIComponent(name)}`));
    }
    if (method === "POST" && target?.action) {
      // Decoded as bytes: workerd warns when a form body is read with .text().
      const form = new URLSearchParams(new TextDecoder().decode(await request.arrayBuffer()));
      if (!(await csrfOk(request, form, csrf))) {
        const e = new AlpineError(
          "unauthorized",
          "the request did not come from this dashboard's own page (CSRF check)",
        );
        return wantsJson ? json(403, e.toJSON()) : html(403, messagePage("Refused", e.message));
      }
      const name = validateName(target.name);
      try {
        const out = await act(backend, name, target.action, form);
        if (wantsJson) return json(200, out);
        // Without the script: the answer as a page, with the link to follow for `open`.
        if (typeof out.web_url === "string")
          return new Response(null, { status: 303, headers: { location: out.web_url } });
        return html(
          200,
          page(
            name,
            `<p role="status">${esc(out.message)}</p><p><a href="/sandboxes/${encodeURIComponent(name)}">Back</a></p>`,
            "",
          ),
        );
      } catch (err) {
        const { status, body } = errorJson(err);
        if (wantsJson) return json(status, body);
        return html(status, messagePage("Refused", String(body.error)));
      }
    }
    if (target || path === "/")
      return json(405, new AlpineError("usage_invalid", `${method} is not allowed here`).toJSON());
    return null;
  } catch (err) {
    const { status, body } = errorJson(err);
    if (wantsJson) return json(status, body);
    return html(status, messagePage(status === 404 ? "Not found" : "Error", String(body.error)));
  }
}
