import { env, exports } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { call, deviceSignIn, TOKEN } from "./helpers.ts";

/**
 * Sign-in to the control plane (identity.ts, identity-routes.ts): GitHub's OAuth web flow and
 * device flow against the local stub (test/e2e/fixtures/github-oauth.ts), the allow-list,
 * sessions kept as hashes and revocable, and Cloudflare Access JWTs signed by the stub's team key.
 */

const GITHUB = inject("githubUrl");

const callAt = (base: string, path: string, init: RequestInit = {}) =>
  exports.default.fetch(new Request(`${base}${path}`, init));

function cookieValue(setCookies: string[], name: string): string | null {
  for (const c of setCookies) {
    const m = new RegExp(`^${name}=([^;]*)`).exec(c);
    if (m) return m[1] ?? null;
  }
  return null;
}

/** The browser's whole web flow for `login`, as far as the callback's answer. */
async function webSignIn(login: string, base = "http://cp.test") {
  const start = await callAt(base, "/auth/github/login", { redirect: "manual" });
  const startUrl = new URL(start.headers.get("location") ?? "");
  const stateCookie = start.headers.getSetCookie().find((c) => c.startsWith("alpine_oauth_state="));
  expect(startUrl.origin).toBe(GITHUB);
  expect(startUrl.pathname).toBe("/login/oauth/authorize");
  expect(startUrl.searchParams.get("redirect_uri")).toBe(`${base}/auth/github/callback`);
  // The user approves at GitHub (the stub, told who); GitHub sends the browser back with a code.
  startUrl.searchParams.set("login", login);
  const approved = await fetch(startUrl, { redirect: "manual" });
  expect(approved.status).toBe(302);
  const back = new URL(approved.headers.get("location") ?? "");
  const state = cookieValue(start.headers.getSetCookie(), "alpine_oauth_state") ?? "";
  const callback = await callAt(base, `/auth/github/callback${back.search}`, {
    redirect: "manual",
    headers: { cookie: `alpine_oauth_state=${state}` },
  });
  return { start, stateCookie, back, state, callback };
}

async function whoami(headers: Record<string, string>) {
  const res = await call("/auth/whoami", { headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("GitHub web flow (browser)", () => {
  it("signs in a listed user: state cookie, code exchanged, HttpOnly SameSite=Lax session cookie", async () => {
    const { stateCookie, callback } = await webSignIn("alice");
    expect(stateCookie).toMatch(/HttpOnly/);
    expect(stateCookie).toMatch(/SameSite=Lax/);
    expect(callback.status).toBe(302);
    expect(callback.headers.get("location")).toBe("/");
    const set = callback.headers.getSetCookie().find((c) => c.startsWith("alpine_session="));
    expect(set).toMatch(/; HttpOnly; SameSite=Lax; Path=\/; Max-Age=43200$/);
    // Not Secure over http (the local `cloud dev`), Secure over https (below).
    expect(set).not.toMatch(/Secure/);
    const session = cookieValue(callback.headers.getSetCookie(), "alpine_session") ?? "";
    expect(session.length).toBeGreaterThan(30);
    expect(await whoami({ cookie: `alpine_session=${session}` })).toEqual({
      status: 200,
      body: { id: "github:alice", login: "alice", admin: false, via: "session" },
    });
    const list = await call("/v1/sandboxes", { headers: { cookie: `alpine_session=${session}` } });
    expect(list.status).toBe(200);
    // Only the hash is stored: the registry holds sessions, none with the token's text.
    const stored = await env.REGISTRY.getByName("registry").sessionsHolding(session);
    expect(stored.count).toBeGreaterThan(0);
    expect(stored.holding).toBe(0);
  });

  it("over https the session cookie is Secure", async () => {
    const { callback } = await webSignIn("bob", "https://cp.test");
    expect(callback.status).toBe(302);
    expect(callback.headers.getSetCookie().find((c) => c.startsWith("alpine_session="))).toMatch(/; Secure$/);
  });

  it("a member of a listed org gets in; an admin is an admin; someone not listed is refused with no session", async () => {
    const dave = await webSignIn("dave");
    const daveSession = cookieValue(dave.callback.headers.getSetCookie(), "alpine_session") ?? "";
    expect((await whoami({ cookie: `alpine_session=${daveSession}` })).body).toMatchObject({
      id: "github:dave",
    });
    const carol = await webSignIn("carol");
    const carolSession = cookieValue(carol.callback.headers.getSetCookie(), "alpine_session") ?? "";
    expect((await whoami({ cookie: `alpine_session=${carolSession}` })).body).toMatchObject({ admin: true });
    const mallory = await webSignIn("mallory");
    expect(mallory.callback.status).toBe(403);
    expect(cookieValue(mallory.callback.headers.getSetCookie(), "alpine_session")).toBeNull();
  });

  it("a callback whose state is not the browser's, or a code used twice, signs nobody in", async () => {
    const { back } = await webSignIn("alice");
    // The code was used by webSignIn already: replaying it (with a matching state) fails at GitHub.
    const replay = await call(`/auth/github/callback${back.search}`, {
      redirect: "manual",
      headers: { cookie: `alpine_oauth_state=${back.searchParams.get("state")}` },
    });
    expect(replay.status).toBe(401);
    const start = await call("/auth/github/login", { redirect: "manual" });
    const url = new URL(start.headers.get("location") ?? "");
    url.searchParams.set("login", "alice");
    const approved = new URL((await fetch(url, { redirect: "manual" })).headers.get("location") ?? "");
    const forged = await call(`/auth/github/callback${approved.search}`, {
      redirect: "manual",
      headers: { cookie: "alpine_oauth_state=someone-elses-state" },
    });
    expect(forged.status).toBe(400);
    expect(forged.headers.getSetCookie().some((c) => c.startsWith("alpine_session="))).toBe(false);
  });

  it("sign-out revokes the session: the same cookie no longer works", async () => {
    const { callback } = await webSignIn("alice");
    const session = cookieValue(callback.headers.getSetCookie(), "alpine_session") ?? "";
    const out = await call("/auth/logout", {
      method: "POST",
      headers: { cookie: `alpine_session=${session}` },
    });
    expect(await out.json()).toEqual({ revoked: true });
    expect(out.headers.getSetCookie()[0]).toMatch(/^alpine_session=; .*Max-Age=0/);
    expect((await whoami({ cookie: `alpine_session=${session}` })).status).toBe(401);
    const list = await call("/v1/sandboxes", { headers: { cookie: `alpine_session=${session}` } });
    expect(list.status).toBe(401);
  });
});

describe("GitHub device flow (alpine login)", () => {
  it("pending until approved, then a control-plane CLI token (not GitHub's) that works as the bearer token", async () => {
    const start = await call("/auth/github/device", { method: "POST" });
    const { device_code, user_code, verification_uri } = (await start.json()) as Record<string, string>;
    expect(verification_uri).toBe(`${GITHUB}/login/device`);
    const poll = () =>
      call("/auth/github/device/token", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ device_code }),
      });
    expect(await (await poll()).json()).toEqual({ pending: "authorization_pending" });
    await fetch(`${GITHUB}/login/device`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user_code, login: "bob" }),
    });
    const done = await poll();
    const text = await done.text();
    expect(text).not.toContain("gho_");
    const body = JSON.parse(text) as { token: string; expires_at: string; principal: unknown };
    expect(body.token).toMatch(/^acp_/);
    expect(body.principal).toEqual({ id: "github:bob", login: "bob", admin: false, via: "cli" });
    expect(Date.parse(body.expires_at) - Date.now()).toBeGreaterThan(23 * 3600_000);
    expect(Date.parse(body.expires_at) - Date.now()).toBeLessThanOrEqual(24 * 3600_000);
    expect((await whoami({ authorization: `Bearer ${body.token}` })).body).toMatchObject({
      id: "github:bob",
    });
    expect((await env.REGISTRY.getByName("registry").sessionsHolding(body.token)).holding).toBe(0);

    const out = await call("/auth/logout", {
      method: "POST",
      headers: { authorization: `Bearer ${body.token}` },
    });
    expect(await out.json()).toEqual({ revoked: true });
    const after = await call("/v1/sandboxes", { headers: { authorization: `Bearer ${body.token}` } });
    expect(after.status).toBe(401);
  });

  it("someone not on the allow-list gets no token", async () => {
    await expect(deviceSignIn("mallory")).rejects.toThrow();
  });

  it("a made-up CLI token is unauthorized", async () => {
    const res = await call("/v1/sandboxes", { headers: { authorization: "Bearer acp_madeupmadeupmadeup" } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { reason_code: string }).reason_code).toBe("unauthorized");
  });
});

describe("Cloudflare Access", () => {
  const jwts = inject("accessJwts");
  it("a valid JWT is the person it names; an email in ALPINE_ADMINS is an admin", async () => {
    expect(await whoami({ "cf-access-jwt-assertion": jwts.user })).toEqual({
      status: 200,
      body: { id: "access:dev@example.com", login: "dev@example.com", admin: false, via: "access" },
    });
    expect((await whoami({ "cf-access-jwt-assertion": jwts.admin })).body).toMatchObject({ admin: true });
    const list = await call("/v1/sandboxes", { headers: { "cf-access-jwt-assertion": jwts.user } });
    expect(list.status).toBe(200);
  });

  for (const bad of ["expired", "wrongAud", "foreignKey"] as const) {
    it(`a JWT that is ${bad} is unauthorized, even with the shared token beside it`, async () => {
      const res = await call("/v1/sandboxes", {
        headers: { "cf-access-jwt-assertion": jwts[bad], authorization: `Bearer ${TOKEN}` },
      });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { reason_code: string }).reason_code).toBe("unauthorized");
    });
  }

  it("the shared admin token still works (automation), as principal admin", async () => {
    expect(await whoami({ authorization: `Bearer ${TOKEN}` })).toEqual({
      status: 200,
      body: { id: "admin", login: "admin", admin: true, via: "token" },
    });
  });
});
