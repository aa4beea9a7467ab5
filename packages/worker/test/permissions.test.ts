import { CONTROL_PLANE_ROUTES, ROUTE_ACCESS, ROUTE_NAMES, type RouteName, routePath } from "@alpine/core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { api, call, cliConfig, deviceSignIn, gitCredentials, TOKEN } from "./helpers.ts";

/**
 * The permission matrix (docs/cloudflare.md, "People and roles"): owner / another user / admin /
 * anonymous × every route of core's route table, read from the table and core's ROUTE_ACCESS so
 * a new route is in the matrix the day it is added. A request that passes the gate carries a body
 * that is not JSON (or is a cheap GET), so it ends at the route's own `usage_invalid` (400) or
 * answer (200) without running anything costly; one that does not ends at 401 or 403.
 */

const NAME = "perm-matrix";
type Who = "owner" | "other" | "admin" | "anonymous";
const tokens: Record<Who, string | null> = { owner: null, other: null, admin: TOKEN, anonymous: null };

async function as(
  who: Who,
  method: string,
  path: string,
  body?: string,
  extra: Record<string, string> = {},
  // biome-ignore lint/suspicious/noExplicitAny: tests index into arbitrary JSON output
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { "content-type": "application/json", ...extra };
  const token = tokens[who];
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await call(path, { method, headers, body });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

beforeAll(async () => {
  expect(
    (await api("PUT", "/v1/auth", { entries: { stub: { type: "api", key: inject("modelKey") } } })).status,
  ).toBe(200);
  tokens.owner = await deviceSignIn("alice");
  tokens.other = await deviceSignIn("bob");
  const launched = await as(
    "owner",
    "POST",
    `/v1/sandboxes/${NAME}/launch`,
    JSON.stringify({ repo: inject("repoUrl"), config: cliConfig(), credentials: gitCredentials() }),
  );
  expect(launched.status, JSON.stringify(launched.body)).toBe(200);
});

afterAll(async () => {
  await api("POST", `/v1/sandboxes/${NAME}/teardown`, { force: true });
});

/** What a principal gets from a route it may use: the route's own answer to our cheap request. */
const passed = (name: RouteName) => (CONTROL_PLANE_ROUTES[name].method === "GET" ? 200 : 400);

function expected(name: RouteName, who: Who): number {
  if (who === "anonymous") return 401;
  const access = ROUTE_ACCESS[name];
  if (access === "signed-in") return passed(name);
  if (access === "admin") return who === "admin" ? passed(name) : 403;
  return who === "other" ? 403 : passed(name);
}

describe("permission matrix: every route × owner / other user / admin / anonymous", () => {
  for (const name of ROUTE_NAMES) {
    for (const who of ["owner", "other", "admin", "anonymous"] as Who[]) {
      const want = expected(name, who);
      it(`${name} as ${who}: ${want}`, async () => {
        const route = CONTROL_PLANE_ROUTES[name];
        const r = await as(
          who,
          route.method,
          routePath(name, NAME),
          route.method === "GET" ? undefined : "{",
        );
        expect(r.status, JSON.stringify(r.body)).toBe(want);
        if (want === 401) expect(r.body.reason_code).toBe("unauthorized");
        if (want === 403)
          expect(r.body).toMatchObject({ reason_code: "forbidden", exit_code: 1, retryable: false });
        if (want === 400) expect(r.body.reason_code).toBe("usage_invalid");
      });
    }
  }
});

describe("owners", () => {
  it("the owner is recorded at first launch; list shows the caller's own, --all only for admins", async () => {
    const mine = await as("owner", "GET", "/v1/sandboxes");
    expect(mine.body.find((s: { name: string }) => s.name === NAME)).toMatchObject({ owner: "github:alice" });
    const theirs = await as("other", "GET", "/v1/sandboxes");
    expect(theirs.body.map((s: { name: string }) => s.name)).not.toContain(NAME);
    const adminDefault = await as("admin", "GET", "/v1/sandboxes");
    expect(adminDefault.body.map((s: { name: string }) => s.name)).not.toContain(NAME);
    const adminAll = await as("admin", "GET", "/v1/sandboxes?all=1");
    expect(adminAll.body.map((s: { name: string }) => s.name)).toContain(NAME);
    const userAll = await as("other", "GET", "/v1/sandboxes?all=1");
    expect(userAll.status).toBe(403);
  });

  it("the owner and an admin really use it; another user cannot, even claiming to be admin in the principal header", async () => {
    expect((await as("owner", "GET", `/v1/sandboxes/${NAME}`)).body).toMatchObject({
      name: NAME,
      state: "running",
    });
    expect((await as("admin", "GET", `/v1/sandboxes/${NAME}/diff`)).status).toBe(200);
    const forged = await as(
      "other",
      "POST",
      `/v1/sandboxes/${NAME}/teardown`,
      JSON.stringify({ force: true }),
      {
        "x-alpine-principal": JSON.stringify({
          id: "github:alice",
          login: "alice",
          admin: true,
          via: "token",
        }),
      },
    );
    expect(forged.status).toBe(403);
    expect((await as("owner", "GET", `/v1/sandboxes/${NAME}`)).body.state).toBe("running");
  });

  it("a launch refused before it ran does not claim a new name", async () => {
    const bad = await as("other", "POST", "/v1/sandboxes/perm-unclaimed/launch", "{");
    expect(bad.status).toBe(400);
    const status = await as("owner", "GET", "/v1/sandboxes/perm-unclaimed");
    expect(status.body.reason_code).toBe("sandbox_not_found");
  });
});

describe("audit log", () => {
  it("records who did what to which sandbox, when and how it ended; a user reads their own lines only", async () => {
    const all = await as("admin", "GET", "/v1/audit?tail=1000");
    expect(all.status).toBe(200);
    expect(all.body).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          principal: "github:alice",
          action: "launch",
          sandbox: NAME,
          outcome: "ok",
        }),
        expect.objectContaining({
          principal: "github:bob",
          action: "teardown",
          sandbox: NAME,
          outcome: "forbidden",
        }),
        expect.objectContaining({
          principal: "github:bob",
          action: "gc",
          sandbox: null,
          outcome: "forbidden",
        }),
        expect.objectContaining({ principal: "admin", action: "auth", sandbox: null, outcome: "ok" }),
        expect.objectContaining({ principal: "github:alice", action: "sign_in", outcome: "ok" }),
      ]),
    );
    for (const line of all.body) expect(Date.parse(line.at)).not.toBeNaN();
    // Reads are not mutations: a status is not in the log.
    expect(all.body.some((l: { action: string }) => l.action === "status")).toBe(false);
    const bobs = await as("other", "GET", "/v1/audit?tail=1000");
    expect(bobs.body.length).toBeGreaterThan(0);
    expect(bobs.body.every((l: { principal: string }) => l.principal === "github:bob")).toBe(true);
  });
});
