import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import type { SandboxRecord } from "@alpine/core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { ControlPlaneProvider } from "../src/providers/types.ts";
import { proxyUi, UiConnections } from "../src/ui-proxy.ts";
import { cliConfig, gitCredentials, TOKEN } from "./helpers.ts";

/**
 * Per-sandbox UI origins as `alpine cloud dev` serves them: the control plane is reached on the
 * loopback, so each sandbox's UI is at `<name>.localhost:<port>` (requests go into the Worker
 * in-process; nothing resolves these names).
 */
const CP = "http://localhost:8787";
const A = "origin-a";
const B = "origin-b";

const at = (url: string, init: RequestInit = {}) => exports.default.fetch(new Request(url, init));

async function api(method: string, path: string, body?: unknown) {
  const res = await at(`${CP}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: tests index into arbitrary JSON output
  return { status: res.status, body: (await res.json()) as any };
}

/** Logs a browser into a sandbox's own origin with a fresh one-time link; returns its cookie header. */
async function signIn(name: string): Promise<{ origin: string; cookie: string; cookies: string[] }> {
  const login = await api("POST", `/v1/sandboxes/${name}/login`);
  expect(login.body.web_url).toMatch(new RegExp(`^http://${name}\\.localhost:8787/auth/\\S+$`));
  const res = await at(login.body.web_url, { redirect: "manual" });
  expect(res.status).toBe(302);
  const cookies = res.headers.getSetCookie();
  return {
    origin: new URL(login.body.web_url).origin,
    cookies,
    cookie: cookies.map((c) => c.split(";")[0]).join("; "),
  };
}

beforeAll(async () => {
  await api("PUT", "/v1/auth", { entries: { stub: { type: "api", key: inject("modelKey") } } });
  for (const name of [A, B]) {
    const r = await api("POST", `/v1/sandboxes/${name}/launch`, {
      repo: inject("repoUrl"),
      config: cliConfig(),
      credentials: gitCredentials(),
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.web_url).toBe(`http://${name}.localhost:8787/`);
  }
});

afterAll(async () => {
  for (const name of [A, B]) await api("POST", `/v1/sandboxes/${name}/teardown`, { force: true });
});

describe("each sandbox's web UI at its own origin", () => {
  it("a one-time link signs the browser into that origin only: no routing cookie, the other sandbox's origin refuses it", async () => {
    const a = await signIn(A);
    expect(a.cookies).toHaveLength(1);
    expect(a.cookies[0]).toMatch(/^alpine_session_[\w-]+=.+HttpOnly; SameSite=Strict; Path=\/$/);
    const page = await at(`${a.origin}/`, { headers: { cookie: a.cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('id="root"');
    const health = await at(`${a.origin}/global/health`, { headers: { cookie: a.cookie } });
    expect(await health.json()).toMatchObject({ healthy: true });
    // A's session means nothing at B's origin (even if a browser were tricked into sending it).
    const other = await at(`http://${B}.localhost:8787/global/health`, { headers: { cookie: a.cookie } });
    expect(other.status).toBe(401);
    expect(await other.text()).toContain(`alpine open ${B}`);
    // Both at once: B's own sign-in does not disturb A's.
    const b = await signIn(B);
    const bHealth = await at(`${b.origin}/global/health`, { headers: { cookie: b.cookie } });
    expect(bHealth.status).toBe(200);
    expect((await at(`${a.origin}/global/health`, { headers: { cookie: a.cookie } })).status).toBe(200);
  });

  it("the control plane's API and sandboxd's own routes are not served on a sandbox's origin", async () => {
    for (const path of ["/v1/sandboxes", "/v1", "/internal/x"]) {
      const res = await at(`http://${A}.localhost:8787${path}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(res.status, path).toBe(404);
    }
  });

  it("an older CLI's /s/<name>/?code= link on the control plane's origin is sent to the sandbox's origin", async () => {
    const res = await at(`${CP}/s/${A}/?code=abc`, { redirect: "manual" });
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe(`http://${A}.localhost:8787/auth/abc`);
  });

  it("an open event stream through the UI counts as activity: the alarm's idle save-and-stop waits for it", async () => {
    const a = await signIn(A);
    const stream = await at(`${a.origin}/global/event`, {
      headers: { cookie: a.cookie, accept: "text/event-stream" },
    });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    await reader.read();
    const stub = env.SANDBOX.getByName(A);
    const idleForDays = () =>
      runInDurableObject(stub, async (instance, state) => {
        const row = state.storage.sql.exec<{ record: string }>("SELECT record FROM sandboxes").toArray()[0]!;
        const old = new Date(Date.now() - 3 * 86_400_000).toISOString();
        state.storage.sql.exec(
          "UPDATE sandboxes SET record = ?",
          JSON.stringify({ ...JSON.parse(row.record), last_activity: old }),
        );
        (instance as unknown as { lastActive: number }).lastActive = 0;
        return (instance as unknown as { ui: UiConnections }).ui.open;
      });
    expect(await idleForDays()).toBe(1);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await api("GET", `/v1/sandboxes/${A}`)).body.state).toBe("running");
    // When it closes, the count drops and the idle time starts at that moment (the unit test
    // below); how soon the object hears of a browser that went away is workerd's (see the report).
    await reader.cancel();
  });
});

describe("Set-Cookie from a sandbox never carries alpine's cookies to the browser", () => {
  // sandboxd drops these too (packages/sandboxd/test/proxy.test.ts, against a real upstream); this
  // is the control plane's own filter, fed the answer a compromised sandboxd could give.
  const record = { name: "x", state: "running", runtime: { handle: {} } } as unknown as SandboxRecord;
  const sandboxAnswering = (headers: Headers, status = 200): ControlPlaneProvider =>
    ({
      endpoint: async () => ({ url: "http://sandboxd.invalid", token: "t" }),
      fetchFor: () => async () => new Response(status === 302 ? null : "ok", { status, headers }),
    }) as unknown as ControlPlaneProvider;
  const evil = () => {
    const h = new Headers();
    h.append("set-cookie", "alpine_ui=other; Path=/; HttpOnly");
    h.append("set-cookie", "alpine_session_sbx_other=s; Path=/");
    h.append("set-cookie", "wide=1; Domain=localhost; Path=/");
    h.append("set-cookie", "theme=dark; Path=/");
    return h;
  };

  it("on UI pages: only the sandbox's own host-only cookies pass", async () => {
    const res = await proxyUi(new Request("http://x/"), record, "x", sandboxAnswering(evil()), "/", "");
    expect(res.headers.getSetCookie()).toEqual(["theme=dark; Path=/"]);
  });

  it("on sandboxd's login answer: its session cookie passes, the routing cookie does not", async () => {
    const res = await proxyUi(
      new Request("http://x/"),
      record,
      "x",
      sandboxAnswering(evil(), 302),
      "/auth/c",
      "",
    );
    expect(res.headers.getSetCookie()).toEqual(["alpine_session_sbx_other=s; Path=/", "theme=dark; Path=/"]);
  });

  it("counts an event stream open until its reader goes away", async () => {
    const conns = new UiConnections();
    const provider = {
      endpoint: async () => ({ url: "http://sandboxd.invalid", token: "t" }),
      fetchFor: () => async () =>
        new Response(
          new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode("data: 1\n\n")) }),
          {
            headers: { "content-type": "text/event-stream" },
          },
        ),
    } as unknown as ControlPlaneProvider;
    const res = await proxyUi(new Request("http://x/"), record, "x", provider, "/event", "", conns);
    expect(conns.open).toBe(1);
    await res.body!.cancel();
    expect(conns.open).toBe(0);
    expect(conns.lastClosedAt).toBeGreaterThan(0);
  });
});
