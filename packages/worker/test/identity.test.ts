import { runInDurableObject } from "cloudflare:test";
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

describe("admin revocation of sessions (alpine sessions ls / revoke)", () => {
  const admin = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
  const sessionsOf = async (user: string) => {
    const res = await call(`/v1/sessions?user=${user}`, { headers: admin });
    expect(res.status).toBe(200);
    return (await res.json()) as {
      id: string;
      principal: string;
      kind: string;
      live: boolean;
      revoked_at: string | null;
    }[];
  };
  const revoke = (body: unknown, headers: Record<string, string> = admin) =>
    call("/v1/sessions/revoke", { method: "POST", headers, body: JSON.stringify(body) });

  it("an admin lists a user's web and cli sessions and revokes one: refused at once on its next request", async () => {
    const web = await webSignIn("alice");
    const cookie = `alpine_session=${cookieValue(web.callback.headers.getSetCookie(), "alpine_session")}`;
    const cli = await deviceSignIn("alice");
    const listed = (await sessionsOf("alice")).filter((s) => s.live);
    expect(listed.map((s) => s.kind)).toEqual(expect.arrayContaining(["web", "cli"]));
    for (const s of listed) {
      expect(s.principal).toBe("github:alice");
      expect(s.id).toMatch(/^[0-9a-f]{16}$/);
    }
    // No token's text is in the listing (ids are hash prefixes).
    const raw = await (await call("/v1/sessions", { headers: admin })).text();
    expect(raw).not.toContain(cli);
    expect(raw).not.toContain(cookie.split("=")[1]);

    // Which listed cli session is this token's: the newest cli one (just signed in).
    const cliId = listed.find((s) => s.kind === "cli")?.id ?? "";
    expect((await call("/v1/sandboxes", { headers: { authorization: `Bearer ${cli}` } })).status).toBe(200);
    const one = await revoke({ id: cliId });
    expect(one.status).toBe(200);
    expect(await one.json()).toEqual({ revoked: [cliId] });
    const refused = await call("/v1/sandboxes", { headers: { authorization: `Bearer ${cli}` } });
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { reason_code: string }).reason_code).toBe("unauthorized");
    // The browser session is another session: still in.
    expect((await call("/v1/sandboxes", { headers: { cookie } })).status).toBe(200);
    expect((await sessionsOf("alice")).find((s) => s.id === cliId)).toMatchObject({ live: false });

    // All of alice's: the cookie is refused at once, on the API and on the dashboard.
    const all = await revoke({ user: "alice" });
    expect(((await all.json()) as { revoked: string[] }).revoked.length).toBeGreaterThanOrEqual(1);
    expect((await call("/v1/sandboxes", { headers: { cookie } })).status).toBe(401);
    expect((await whoami({ cookie })).status).toBe(401);
    expect((await sessionsOf("github:alice")).filter((s) => s.live)).toEqual([]);

    // An unknown id is bad input, and says where ids come from.
    const unknown = await revoke({ id: "0000000000000000" });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/alpine sessions ls/);

    // Audited: who revoked, whose.
    const audit = (await (await call("/v1/audit?tail=50", { headers: admin })).json()) as {
      principal: string;
      action: string;
      outcome: string;
      subject?: string;
    }[];
    const lines = audit.filter((l) => l.action === "revoke_sessions" && l.outcome === "ok");
    expect(lines.slice(-2)).toEqual([
      expect.objectContaining({ principal: "admin", subject: "github:alice" }),
      expect.objectContaining({ principal: "admin", subject: "github:alice" }),
    ]);
    // alice sees, in her own audit lines, that her sessions were revoked (once she signs in again).
    const again = await deviceSignIn("alice");
    const hers = (await (
      await call("/v1/audit?tail=100", { headers: { authorization: `Bearer ${again}` } })
    ).json()) as { action: string; subject?: string }[];
    expect(hers.some((l) => l.action === "revoke_sessions" && l.subject === "github:alice")).toBe(true);
  });

  it("a non-admin may neither list nor revoke sessions: forbidden, and the refusal is audited", async () => {
    const bob = await deviceSignIn("bob");
    const alice = await deviceSignIn("alice");
    const headers = { authorization: `Bearer ${bob}`, "content-type": "application/json" };
    const ls = await call("/v1/sessions", { headers });
    expect(ls.status).toBe(403);
    expect(((await ls.json()) as { reason_code: string }).reason_code).toBe("forbidden");
    const r = await revoke({ user: "alice" }, headers);
    expect(r.status).toBe(403);
    // alice's token still works: bob revoked nothing.
    expect((await call("/v1/sandboxes", { headers: { authorization: `Bearer ${alice}` } })).status).toBe(200);
    const audit = (await (await call("/v1/audit?tail=20", { headers: admin })).json()) as {
      principal: string;
      action: string;
      outcome: string;
    }[];
    expect(audit).toContainEqual(
      expect.objectContaining({ principal: "github:bob", action: "revoke_sessions", outcome: "forbidden" }),
    );
  });
});

describe("allow-list re-check of a session in use", () => {
  /** Pretends the session's membership was last confirmed `ms` ago (the registry's row). */
  async function ageCheck(ms: number) {
    await runInDurableObject(env.REGISTRY.getByName("registry"), (_i, state) => {
      state.storage.sql.exec("UPDATE sessions SET checked_at = ?", new Date(Date.now() - ms).toISOString());
    });
  }
  const setOrgs = (login: string, orgs: string[]) =>
    fetch(`${GITHUB}/stub/orgs/${login}`, { method: "PUT", body: JSON.stringify(orgs) });

  it("an org member removed from the org keeps access until the re-check interval, then loses it at once", async () => {
    const token = await deviceSignIn("dave");
    const web = await webSignIn("dave");
    const cookie = `alpine_session=${cookieValue(web.callback.headers.getSetCookie(), "alpine_session")}`;
    const as = (h: Record<string, string>) => call("/v1/sandboxes", { headers: h });
    const bearer = { authorization: `Bearer ${token}` };
    // The GitHub token kept for the re-check is sealed: neither it nor the CLI token is in clear.
    expect((await env.REGISTRY.getByName("registry").sessionsHolding("gho_")).holding).toBe(0);
    try {
      // Still a member after the interval: GitHub is asked again and the session goes on.
      await ageCheck(11 * 60_000);
      expect((await as(bearer)).status).toBe(200);
      expect((await as({ cookie })).status).toBe(200);
      // dave leaves acme on GitHub. Inside the interval the cached check holds (no GitHub call).
      await setOrgs("dave", []);
      expect((await as(bearer)).status).toBe(200);
      expect((await as({ cookie })).status).toBe(200);
      // Past it, the next request asks GitHub, is refused, and every session of dave's is revoked.
      await ageCheck(11 * 60_000);
      const refused = await as(bearer);
      expect(refused.status).toBe(403);
      expect(await refused.json()).toMatchObject({ reason_code: "forbidden" });
      expect((await as(bearer)).status).toBe(401);
      expect((await as({ cookie })).status).toBe(401);
      const audit = (await (
        await call("/v1/audit?tail=20", { headers: { authorization: `Bearer ${TOKEN}` } })
      ).json()) as Record<string, unknown>[];
      expect(audit).toContainEqual(
        expect.objectContaining({
          principal: "system:allow-list",
          action: "session_revoked",
          outcome: "not_listed",
          subject: "github:dave",
        }),
      );
    } finally {
      await setOrgs("dave", ["acme"]);
    }
    // Back in the org, dave signs in again.
    expect((await as({ authorization: `Bearer ${await deviceSignIn("dave")}` })).status).toBe(200);
  });
});
