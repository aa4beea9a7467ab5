import {
  AlpineError,
  CONTROL_PLANE_ROUTES,
  type GcView,
  parseRouteRequest,
  ROUTE_NAMES,
  type RouteName,
  validateName,
} from "@alpine/core";
import { type Context, Hono } from "hono";
import { getCookie } from "hono/cookie";
import { safeEqual } from "./crypto.ts";
import { adminTokenAuthenticate, mountDashboard } from "./dashboard-routes.ts";
import type { Env } from "./env.ts";
import { githubWebhook } from "./github-webhook.ts";
import { htmlPage } from "./html.ts";
import { errorResponse, forwardedInit } from "./http.ts";
import { sandboxOfUiHost, uiLinks } from "./ui-origin.ts";

/**
 * The browser's routing cookie of the one-origin fallback (no per-sandbox origins, e.g. on a
 * `workers.dev` URL): which sandbox the UI at this origin's root belongs to.
 */
export const UI_COOKIE = "alpine_ui";

type WorkerContext = Context<{ Bindings: Env }>;

function sandboxStub(env: Env, name: string) {
  return env.SANDBOX.getByName(validateName(name));
}

/** Forwards a request to a sandbox's Durable Object as `op`: a route's name, or `ui/<path>` for the web UI. */
async function toSandbox(
  env: Env,
  request: Request,
  name: string,
  op: string,
  search = "",
): Promise<Response> {
  const origin = new URL(request.url).origin;
  const headers = new Headers(request.headers);
  headers.delete("authorization");
  headers.set("x-alpine-name", name);
  headers.set("x-alpine-origin", origin);
  return sandboxStub(env, name).fetch(
    new Request(`https://sandbox-object/${op}${search}`, forwardedInit(request, headers)),
  );
}

function withoutCookie(request: Request, cookie: string): Request {
  const headers = new Headers(request.headers);
  const kept = (headers.get("cookie") ?? "")
    .split(";")
    .map((c) => c.trim())
    .filter((c) => c && !c.startsWith(`${cookie}=`));
  if (kept.length) headers.set("cookie", kept.join("; "));
  else headers.delete("cookie");
  return new Request(request, { headers });
}

function uiCookie(request: Request, name: string): string {
  const secure = new URL(request.url).protocol === "https:" ? "; Secure" : "";
  return `${UI_COOKIE}=${name}; HttpOnly; SameSite=Strict; Path=/${secure}`;
}

/** Routes the registry object answers: `list` and `auth`. */
async function registryRoute(c: WorkerContext, name: RouteName): Promise<Response> {
  const registry = c.env.REGISTRY.getByName("registry");
  if (name === "list") return c.json(await registry.list());
  if (name === "auth") {
    const { entries } = parseRouteRequest("auth", { body: await c.req.text() });
    const held = await registry.putAuth(entries);
    return c.json({ providers: Object.keys(entries).sort(), held });
  }
  throw new AlpineError("internal_error", `route ${name} has no registry handler`);
}

/**
 * A route every sandbox answers for itself (`gc`): sent to each sandbox the
 * registry knows, in turn; the answers are merged, and a sandbox that failed
 * is reported as kept with its reason code.
 */
async function everySandbox(c: WorkerContext, name: RouteName): Promise<Response> {
  const input = parseRouteRequest(name, { body: await c.req.text() });
  const merged: GcView = { torn_down: [], kept: [] };
  for (const sandbox of await c.env.REGISTRY.getByName("registry").names()) {
    const forward = new Request(c.req.url, {
      method: CONTROL_PLANE_ROUTES[name].method,
      headers: c.req.raw.headers,
      body: JSON.stringify(input),
    });
    const res = await toSandbox(c.env, forward, sandbox, name);
    const out = (await res.json()) as Partial<GcView> & { reason_code?: string };
    if (!res.ok) {
      merged.kept.push({ name: sandbox, reason: String(out.reason_code ?? res.status) });
      continue;
    }
    merged.torn_down.push(...(out.torn_down ?? []));
    merged.kept.push(...(out.kept ?? []));
  }
  return c.json(merged);
}

export function createApp() {
  const app = new Hono<{ Bindings: Env }>();

  app.onError((err) => errorResponse(err));

  // ---- a sandbox's own UI origin, <name>.<parent host> (ui-origin.ts) ----
  // Everything there is that sandbox's web UI, proxied to its sandboxd, which checks its own
  // session cookie; `/auth/<code>` is sandboxd's one-time login. The control plane's API is
  // not served on these origins.
  app.use("*", async (c, next) => {
    const name = sandboxOfUiHost(c.env, new URL(c.req.url));
    if (!name) return next();
    const path = c.req.path;
    if (path === "/v1" || path.startsWith("/v1/") || path.startsWith("/internal/")) {
      return htmlPage(404, "Not found", "No such page.");
    }
    return toSandbox(c.env, c.req.raw, name, `ui${path}`, new URL(c.req.url).search);
  });

  app.get("/healthz", (c) => c.json({ ok: true }));

  // ---- GitHub's front door (github-front.ts): the GitHub App's webhook, authenticated by its signature ----
  app.post("/github/webhook", (c) => githubWebhook(c));

  // Every /v1 route: `Authorization: Bearer <ALPINE_CONTROL_PLANE_TOKEN>`, compared in constant time.
  app.use("/v1/*", async (c, next) => {
    const expected = c.env.ALPINE_CONTROL_PLANE_TOKEN;
    if (!expected || expected.length < 16) {
      throw new AlpineError(
        "control_plane_error",
        "the control plane has no ALPINE_CONTROL_PLANE_TOKEN secret (at least 16 characters)",
      );
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    const ok = await safeEqual(m?.[1] ?? "", expected);
    if (!ok || !m) throw new AlpineError("unauthorized", "missing or wrong control-plane token", {});
    await next();
  });

  // Every /v1 route comes from core's route table (control-plane-routes.ts).
  for (const name of ROUTE_NAMES) {
    const route = CONTROL_PLANE_ROUTES[name];
    app.on(route.method, route.path, (c) => {
      switch (route.target) {
        case "sandbox":
          return toSandbox(c.env, c.req.raw, c.req.param("name") ?? "", name, new URL(c.req.url).search);
        case "registry":
          return registryRoute(c, name);
        case "every-sandbox":
          return everySandbox(c, name);
      }
    });
  }

  app.all("/v1/*", (c) => {
    throw Object.assign(new AlpineError("usage_invalid", `no such endpoint: ${c.req.method} ${c.req.path}`), {
      httpStatus: 404,
    });
  });

  // ---- the web UI ----
  // OpenCode's app only works at an origin's root (assets from /assets/…, API at location.origin).
  // /s/<name>/?code=<one-time code> trades the code (through sandboxd) for sandboxd's session cookie
  // plus our routing cookie naming the sandbox, and redirects to the root, where every request is
  // routed to that sandbox by the cookie. sandboxd checks its own cookie on every request.
  app.get("/s/:name/", async (c) => {
    const name = validateName(c.req.param("name"));
    const code = c.req.query("code");
    // Where the sandbox has its own origin, a link of this form (an older CLI's) goes there.
    const own = uiLinks(c.env, new URL(c.req.url).origin, name);
    if (code && !own.web.startsWith(`${new URL(c.req.url).origin}/`)) return c.redirect(own.login(code), 302);
    if (!code) {
      if (getCookie(c, UI_COOKIE) === name) return c.redirect("/", 302);
      return htmlPage(
        401,
        "Not signed in",
        `Run \`alpine open ${name}\` for a one-time login link to this sandbox.`,
      );
    }
    const res = await toSandbox(
      c.env,
      withoutCookie(c.req.raw, UI_COOKIE),
      name,
      `ui/auth/${encodeURIComponent(code)}`,
    );
    if (res.status !== 302) return res;
    const headers = new Headers(res.headers);
    headers.append("set-cookie", uiCookie(c.req.raw, name));
    return new Response(null, { status: 302, headers });
  });
  app.get("/s/:name", (c) => c.redirect(`/s/${c.req.param("name")}/${new URL(c.req.url).search}`, 301));

  // ---- the dashboard (docs/dashboard.md) ----
  // At `/` for requests without the UI's routing cookie (those stay the web UI's, below). Contract 3:
  // the shared admin token until identity's sessions replace adminTokenAuthenticate.
  mountDashboard(app, adminTokenAuthenticate);

  app.all("*", async (c) => {
    const path = c.req.path;
    // sandboxd's own API and internal routes are never reachable through the UI proxy.
    if (path.startsWith("/internal/") || path.startsWith("/auth/") || path === "/v1") {
      return htmlPage(404, "Not found", "No such page.");
    }
    const name = getCookie(c, UI_COOKIE);
    if (!name) {
      return htmlPage(
        401,
        "Not signed in",
        "This is the alpine control plane. Run `alpine open <name>` for a one-time login link to a sandbox's web UI.",
      );
    }
    const url = new URL(c.req.url);
    return toSandbox(c.env, withoutCookie(c.req.raw, UI_COOKIE), name, `ui${path}`, url.search);
  });

  return app;
}
