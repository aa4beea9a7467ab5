import {
  AlpineError,
  assertAdmin,
  CONTROL_PLANE_ROUTES,
  type GcView,
  parseRouteRequest,
  ROUTE_ACCESS,
  ROUTE_NAMES,
  type RouteName,
  toAlpineError,
  validateName,
  validateSecretName,
  validateSecretScope,
  validateSecretValue,
} from "@alpine/core";
import { PREVIEW_PORT_HEADER } from "@alpine/core/sandboxd-api";
import { type Context, Hono } from "hono";
import { getCookie } from "hono/cookie";
import { dashboardAuthenticate, mountDashboard } from "./dashboard-routes.ts";
import type { Env } from "./env.ts";
import { githubWebhook } from "./github-webhook.ts";
import { htmlPage } from "./html.ts";
import { errorResponse, forwardedInit } from "./http.ts";
import {
  auditLine,
  PRINCIPAL_HEADER,
  type Principal,
  principalIdOf,
  requirePrincipal,
  SESSION_COOKIE,
} from "./identity.ts";
import { authRoutes } from "./identity-routes.ts";
import { R2PreparedStore } from "./prepared-store.ts";
import { assertNameServable, previewOfUiHost, sandboxOfUiHost, uiLinks } from "./ui-origin.ts";

/**
 * The browser's routing cookie of the one-origin fallback (no per-sandbox origins, e.g. on a
 * `workers.dev` URL): which sandbox the UI at this origin's root belongs to.
 */
export const UI_COOKIE = "alpine_ui";

type WorkerContext = Context<{
  Bindings: Env;
  // auditSubject: whose sessions a `revoke_sessions` concerned (its audit line's subject).
  Variables: { principal: Principal; auditSubject?: string };
}>;

function sandboxStub(env: Env, name: string) {
  return env.SANDBOX.getByName(validateName(name));
}

/**
 * Forwards a request to a sandbox's Durable Object as `op`: a route's name, or `ui/<path>` for the
 * web UI. The caller's principal (identity.ts) goes with an API route; whatever a client sent in
 * that header is dropped, and the control plane's session cookie never reaches a sandbox.
 */
async function toSandbox(
  env: Env,
  request: Request,
  name: string,
  op: string,
  search = "",
  principal: Principal | null = null,
): Promise<Response> {
  const origin = new URL(request.url).origin;
  const headers = dropCookie(new Headers(request.headers), SESSION_COOKIE);
  headers.delete("authorization");
  headers.delete("cf-access-jwt-assertion");
  headers.delete(PRINCIPAL_HEADER);
  headers.delete(PREVIEW_PORT_HEADER);
  if (principal) headers.set(PRINCIPAL_HEADER, JSON.stringify(principal));
  headers.set("x-alpine-name", name);
  headers.set("x-alpine-origin", origin);
  return sandboxStub(env, name).fetch(
    new Request(`https://sandbox-object/${op}${search}`, forwardedInit(request, headers)),
  );
}

function withoutCookie(request: Request, cookie: string): Request {
  return new Request(request, { headers: dropCookie(new Headers(request.headers), cookie) });
}

/** `headers` without one cookie (changed in place). */
function dropCookie(headers: Headers, cookie: string): Headers {
  const kept = (headers.get("cookie") ?? "")
    .split(";")
    .map((c) => c.trim())
    .filter((c) => c && !c.startsWith(`${cookie}=`));
  if (kept.length) headers.set("cookie", kept.join("; "));
  else headers.delete("cookie");
  return headers;
}

function uiCookie(request: Request, name: string): string {
  const secure = new URL(request.url).protocol === "https:" ? "; Secure" : "";
  return `${UI_COOKIE}=${name}; HttpOnly; SameSite=Strict; Path=/${secure}`;
}

/** Routes the registry object answers: `list`, `auth`, `audit`, the repo secrets' `secrets_*`, `sessions` and `revoke_sessions`. */
async function registryRoute(c: WorkerContext, name: RouteName): Promise<Response> {
  const registry = c.env.REGISTRY.getByName("registry");
  const principal = c.get("principal");
  const query = new URL(c.req.url).searchParams;
  if (name === "list") {
    const { all } = parseRouteRequest("list", { query });
    if (all) assertAdmin(principal, "list --all");
    return c.json(await registry.listFor(principal, all));
  }
  if (name === "audit") {
    const { tail } = parseRouteRequest("audit", { query });
    return c.json(await registry.auditFor(principal, tail));
  }
  // identity: an admin's sessions view and revocation (the gate above let only admins here).
  if (name === "sessions") {
    const { user } = parseRouteRequest("sessions", { query });
    return c.json(await registry.sessionsFor(user ? principalIdOf(user) : null));
  }
  if (name === "revoke_sessions") {
    const input = parseRouteRequest("revoke_sessions", { body: await c.req.text() });
    if (input.user) c.set("auditSubject", principalIdOf(input.user));
    const done = await registry.revokeSessionsWhere(
      input.id !== undefined ? { id: input.id } : { principal: principalIdOf(input.user ?? "") },
    );
    if (done.principals.length) c.set("auditSubject", done.principals.join(","));
    if (input.id !== undefined && !done.revoked.length) {
      throw new AlpineError(
        "usage_invalid",
        `no live session with id '${input.id}' (alpine sessions ls lists them)`,
        {
          id: input.id,
        },
      );
    }
    return c.json({ revoked: done.revoked });
  }
  if (name === "auth") {
    const { entries } = parseRouteRequest("auth", { body: await c.req.text() });
    const held = await registry.putAuth(entries);
    return c.json({ providers: Object.keys(entries).sort(), held });
  }
  // repo secrets (docs/cloudflare.md, "Repo secrets"): checked as the CLI checks them, sealed by the registry.
  if (name === "secrets_ls") return c.json({ secrets: await registry.listRepoSecrets() });
  if (name === "secrets_set") {
    const input = parseRouteRequest("secrets_set", { body: await c.req.text() });
    const entry = {
      name: validateSecretName(input.name),
      scope: validateSecretScope(input.scope),
      value: validateSecretValue(input.name, input.value),
      agent: input.agent,
    };
    const { replaced } = await registry.putRepoSecret(entry);
    return c.json({ name: entry.name, scope: entry.scope, agent: entry.agent, replaced });
  }
  if (name === "secrets_rm") {
    const input = parseRouteRequest("secrets_rm", { body: await c.req.text() });
    const [secret, scope] = [validateSecretName(input.name), validateSecretScope(input.scope)];
    if (!(await registry.removeRepoSecret(scope, secret)))
      throw new AlpineError(
        "usage_invalid",
        `no secret ${secret} for ${scope}; \`alpine secrets ls\` lists them`,
        {
          name: secret,
          scope,
        },
      );
    return c.json({ name: secret, scope, removed: true as const });
  }
  // prepared environments in R2 (prepared-store.ts), answered by the Worker itself.
  if (name === "environments") {
    return c.json({ environments: await new R2PreparedStore(c.env.CHECKPOINTS).list(), unavailable: [] });
  }
  if (name === "environments_rm") {
    const { keys } = parseRouteRequest("environments_rm", { body: await c.req.text() });
    return c.json({ removed: await new R2PreparedStore(c.env.CHECKPOINTS).remove(keys) });
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
    const res = await toSandbox(c.env, forward, sandbox, name, "", c.get("principal"));
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

/** Writes a mutation the Worker answers itself (registry and every-sandbox routes) to the audit log. */
async function audited(c: WorkerContext, name: RouteName, run: () => Promise<Response>): Promise<Response> {
  if (!CONTROL_PLANE_ROUTES[name].mutates) return run();
  let outcome = "ok";
  try {
    const res = await run();
    if (!res.ok) outcome = String(res.status);
    return res;
  } catch (err) {
    outcome = toAlpineError(err).reason;
    throw err;
  } finally {
    await auditLine(c.env, {
      principal: c.get("principal").id,
      action: name,
      sandbox: null,
      outcome,
      ...(c.get("auditSubject") ? { subject: c.get("auditSubject") } : {}),
    });
  }
}

export function createApp() {
  const app = new Hono<{ Bindings: Env; Variables: { principal: Principal; auditSubject?: string } }>();

  app.onError((err) => errorResponse(err));

  // ---- previews: a port of a sandbox at its own origin, <name>--p<port>.<parent host> (ui-origin.ts) ----
  // Every path there is the app's, proxied by the sandbox's sandboxd behind that port's own
  // one-time login (`/__alpine/auth/<code>`) and session cookie; the app's Authorization passes.
  app.use("*", async (c, next) => {
    const preview = previewOfUiHost(c.env, new URL(c.req.url));
    if (!preview) return next();
    const url = new URL(c.req.url);
    const headers = dropCookie(new Headers(c.req.raw.headers), SESSION_COOKIE);
    headers.delete("cf-access-jwt-assertion");
    headers.delete(PRINCIPAL_HEADER);
    headers.set(PREVIEW_PORT_HEADER, String(preview.port));
    headers.set("x-alpine-name", preview.name);
    headers.set("x-alpine-origin", url.origin);
    return sandboxStub(c.env, preview.name).fetch(
      new Request(`https://sandbox-object/ui${url.pathname}${url.search}`, forwardedInit(c.req.raw, headers)),
    );
  });

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

  // identity: GitHub sign-in (web and device flow) and sign-out under /auth/ (identity-routes.ts).
  authRoutes(app);

  // Every /v1 route has a caller (identity.ts): the shared admin token, a CLI token of `alpine
  // login`, a browser session or a Cloudflare Access JWT, each checked in constant time or by hash.
  app.use("/v1/*", async (c, next) => {
    c.set("principal", await requirePrincipal(c.env, c.req.raw));
    await next();
  });

  // Every /v1 route comes from core's route table (control-plane-routes.ts); who may use it from
  // core's ROUTE_ACCESS (an admin route here; a sandbox's owner is checked by its object).
  for (const name of ROUTE_NAMES) {
    const route = CONTROL_PLANE_ROUTES[name];
    app.on(route.method, route.path, async (c) => {
      const principal = c.get("principal");
      if (ROUTE_ACCESS[name] === "admin") {
        try {
          assertAdmin(principal, `\`${name}\``);
        } catch (err) {
          await auditLine(c.env, {
            principal: principal.id,
            action: name,
            sandbox: null,
            outcome: "forbidden",
          });
          throw err;
        }
      }
      // Preview hostnames (`<name>--p<port>.<host>`) keep `--` out of new sandbox names.
      if (name === "launch") assertNameServable(c.req.param("name") ?? "");
      switch (route.target) {
        case "sandbox":
          return toSandbox(
            c.env,
            c.req.raw,
            c.req.param("name") ?? "",
            name,
            new URL(c.req.url).search,
            principal,
          );
        case "registry":
          return audited(c, name, () => registryRoute(c, name));
        case "every-sandbox":
          return audited(c, name, () => everySandbox(c, name));
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
  // At `/` for requests without the UI's routing cookie (those stay the web UI's, below); its
  // callers are identity's (a GitHub sign-in, Access, a token) or the admin's one-time link.
  mountDashboard(app, dashboardAuthenticate);

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
