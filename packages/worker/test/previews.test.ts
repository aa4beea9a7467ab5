import { exports } from "cloudflare:workers";
import type { SandboxRecord } from "@alpine/core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { previewEnvironment } from "../../../test/e2e/fixtures/preview-app.ts";
import type { ControlPlaneProvider } from "../src/providers/types.ts";
import { previewOfUiHost, sandboxOfUiHost } from "../src/ui-origin.ts";
import { proxyUi } from "../src/ui-proxy.ts";
import { cliConfig, gitCredentials, TOKEN, waitFor } from "./helpers.ts";

/**
 * Previews through the control plane as `alpine cloud dev` serves them: each port of each sandbox
 * at its own origin, `<name>--p<port>.localhost:<port>`, routed by the Worker to the sandbox's
 * object and its sandboxd's preview proxy. The sandbox's environment starts a small app
 * (test/e2e/fixtures/preview-app.ts) on PORT; requests go into the Worker in-process.
 */
const CP = "http://localhost:8787";
const NAME = "prev-a";
const PORT = 4471;
const PREVIEW = `http://${NAME}--p${PORT}.localhost:8787`;

const at = (url: string, init: RequestInit = {}) => exports.default.fetch(new Request(url, init));

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await at(`${CP}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: tests index into arbitrary JSON output
  return { status: res.status, body: (await res.json()) as any };
}

/** A fresh one-time preview link of PORT, traded for the browser's cookie header. */
async function signIn(port = PORT): Promise<{ link: string; cookies: string[]; cookie: string }> {
  const login = await api("POST", `/v1/sandboxes/${NAME}/login`, { port });
  expect(login.status, JSON.stringify(login.body)).toBe(200);
  const link = login.body.web_url as string;
  const res = await at(link, { redirect: "manual" });
  expect(res.status).toBe(302);
  expect(res.headers.get("location")).toBe("/");
  const cookies = res.headers.getSetCookie();
  expect(cookies.filter((c) => c.startsWith(`alpine_preview_`))).toHaveLength(1);
  return { link, cookies, cookie: cookies.map((c) => c.split(";")[0]).join("; ") };
}

beforeAll(async () => {
  await api("PUT", "/v1/auth", { entries: { stub: { type: "api", key: inject("modelKey") } } });
  const r = await api("POST", `/v1/sandboxes/${NAME}/launch`, {
    repo: inject("repoUrl"),
    config: cliConfig({ environment: previewEnvironment(PORT) }),
    credentials: gitCredentials(),
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
});

afterAll(async () => {
  await api("POST", `/v1/sandboxes/${NAME}/teardown`, { force: true });
});

describe("preview hostnames", () => {
  const env = { ALPINE_UI_HOST: "alpine.example.com" };
  const host = (h: string) => new URL(`https://${h}/x`);

  it("`<name>--p<port>` under the parent host is a preview; a plain label is a UI; nothing else is either", () => {
    expect(previewOfUiHost(env, host("web--p3000.alpine.example.com"))).toEqual({ name: "web", port: 3000 });
    expect(sandboxOfUiHost(env, host("web--p3000.alpine.example.com"))).toBeNull();
    expect(sandboxOfUiHost(env, host("web.alpine.example.com"))).toBe("web");
    expect(previewOfUiHost(env, host("web.alpine.example.com"))).toBeNull();
    // Ports out of range or with a leading zero, a foreign parent, two labels: neither.
    for (const h of [
      "web--p0.alpine.example.com",
      "web--p03000.alpine.example.com",
      "web--p65536.alpine.example.com",
      "web--p3000.other.example.com",
      "x.web--p3000.alpine.example.com",
      "--p3000.alpine.example.com",
    ])
      expect(previewOfUiHost(env, host(h)), h).toBeNull();
    // cloud dev: the loopback's `*.localhost`.
    expect(previewOfUiHost({}, new URL(`${PREVIEW}/`))).toEqual({ name: NAME, port: PORT });
  });

  it("a launch of a name containing `--` is refused: such a name could be read as a preview host", async () => {
    const r = await api("POST", "/v1/sandboxes/web--p3000/launch", {
      repo: inject("repoUrl"),
      config: cliConfig(),
      credentials: gitCredentials(),
    });
    expect(r.status).toBe(400);
    expect(r.body.reason_code).toBe("name_invalid");
    expect(r.body.error).toContain("preview hostnames");
  });
});

describe("a sandbox's preview through the Worker", () => {
  it("status lists the declared port and that the start command listens on it", async () => {
    const ports = await waitFor("the app to listen", async () => {
      const s = await api("GET", `/v1/sandboxes/${NAME}`);
      const p = (s.body.runtime?.ports ?? []).find((x: { port: number }) => x.port === PORT);
      return p?.listening ? s.body.runtime.ports : null;
    });
    expect(ports).toContainEqual({ port: PORT, declared: true, listening: true });
  });

  it("a one-time link sets an HttpOnly cookie for that hostname only; the app is served at `/`; the link works once", async () => {
    const { link, cookies, cookie } = await signIn();
    expect(link).toMatch(new RegExp(`^${PREVIEW}/__alpine/auth/\\S+$`));
    expect(cookies).toHaveLength(1);
    // Host-only (no Domain): the browser keeps it for `<name>--p<port>.<host>` alone.
    expect(cookies[0]).toMatch(
      new RegExp(`^alpine_preview_[\\w-]+_${PORT}=.+; HttpOnly; SameSite=Strict; Path=/$`),
    );
    const page = await at(`${PREVIEW}/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(`served by start on ${PORT}`);
    // The app's own cookie passes; one named like alpine's or for a parent domain does not.
    expect(page.headers.getSetCookie()).toEqual(["app_pref=dark; Path=/"]);
    // Reused: refused.
    const again = await at(link, { redirect: "manual" });
    expect(again.status).toBe(401);
    expect(await again.text()).toContain(`alpine open ${NAME} --port ${PORT}`);
  });

  it("the app gets its own Authorization and cookies, none of alpine's, and not the Worker's routing header", async () => {
    const { cookie } = await signIn();
    const res = await at(`${PREVIEW}/echo`, {
      headers: { cookie: `${cookie}; theme=blue`, authorization: "Basic YXBwOmFwcA==" },
    });
    expect(await res.json()).toEqual({
      cookie: "theme=blue",
      authorization: "Basic YXBwOmFwcA==",
      preview_header: "",
    });
  });

  it("without its cookie, with the UI's cookie, or with another port's cookie, a preview is refused", async () => {
    expect((await at(`${PREVIEW}/`)).status).toBe(401);
    // The UI's session of the same sandbox opens the UI, not a preview.
    const ui = await api("POST", `/v1/sandboxes/${NAME}/login`);
    const uiLogin = await at(ui.body.web_url, { redirect: "manual" });
    const uiCookie = uiLogin.headers.getSetCookie()[0]!.split(";")[0]!;
    expect((await at(`${PREVIEW}/`, { headers: { cookie: uiCookie } })).status).toBe(401);
    // A preview cookie of port 4472 opens neither PORT's preview nor the UI.
    const other = await signIn(PORT + 1);
    expect((await at(`${PREVIEW}/`, { headers: { cookie: other.cookie } })).status).toBe(401);
    const mine = await signIn();
    expect((await at(`http://${NAME}.localhost:8787/`, { headers: { cookie: mine.cookie } })).status).toBe(
      401,
    );
    // A routing header a client sends on the UI's origin is dropped: no preview there.
    const forged = await at(`http://${NAME}.localhost:8787/echo`, {
      headers: { cookie: mine.cookie, "x-alpine-preview-port": String(PORT) },
    });
    expect(forged.status).toBe(401);
  });

  it("event streams and WebSockets reach the app", async () => {
    const { cookie } = await signIn();
    const stream = await at(`${PREVIEW}/events`, { headers: { cookie, accept: "text/event-stream" } });
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    const reader = stream.body!.getReader();
    let seen = "";
    while (!seen.includes("tick-1")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    expect(seen).toContain("data: tick-0");
    expect(seen).toContain("data: tick-1");
    await reader.cancel();

    const refused = await at(`${PREVIEW}/ws`, { headers: { upgrade: "websocket" } });
    expect(refused.status).toBe(401);
    const up = await at(`${PREVIEW}/ws`, { headers: { cookie, upgrade: "websocket" } });
    expect(up.status).toBe(101);
    const ws = up.webSocket!;
    ws.accept();
    const echoed = new Promise<string>((resolve) =>
      ws.addEventListener("message", (e) => resolve(String(e.data)), { once: true }),
    );
    ws.send("ping-preview");
    expect(await echoed).toBe("echo:ping-preview");
    ws.close();
  });

  it("permissions: only the owner or an admin gets a preview link", async () => {
    const jwts = inject("accessJwts");
    const res = await at(`${CP}/v1/sandboxes/${NAME}/login`, {
      method: "POST",
      headers: { "cf-access-jwt-assertion": jwts.user, "content-type": "application/json" },
      body: JSON.stringify({ port: PORT }),
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { reason_code: string }).reason_code).toBe("forbidden");
    const anonymous = await at(`${CP}/v1/sandboxes/${NAME}/login`, {
      method: "POST",
      body: JSON.stringify({ port: PORT }),
    });
    expect(anonymous.status).toBe(401);
  });

  it("on a control plane without per-sandbox hostnames (a workers.dev URL) previews are refused with why", async () => {
    const res = await exports.default.fetch(
      new Request(`http://cp.test/v1/sandboxes/${NAME}/login`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ port: PORT }),
      }),
    );
    expect(res.status).toBe(400);
    const body = (await res.json()) as { reason_code: string; error: string };
    expect(body.reason_code).toBe("usage_invalid");
    expect(body.error).toContain("ALPINE_UI_HOST");
  });
});

describe("Set-Cookie on a preview's login answer", () => {
  const record = { name: "x", state: "running", runtime: { handle: {} } } as unknown as SandboxRecord;
  const provider = (headers: Headers): ControlPlaneProvider =>
    ({
      endpoint: async () => ({ url: "http://sandboxd.invalid", token: "t" }),
      fetchFor: () => async () => new Response(null, { status: 302, headers }),
    }) as unknown as ControlPlaneProvider;

  it("passes the preview's session cookie only, never the UI's session or a Domain cookie", async () => {
    const h = new Headers();
    h.append("set-cookie", "alpine_preview_sbx_3000=p; Path=/; HttpOnly");
    h.append("set-cookie", "alpine_session_sbx=s; Path=/");
    h.append("set-cookie", "wide=1; Domain=localhost; Path=/");
    const preview = new Request("http://x/", { headers: { "x-alpine-preview-port": "3000" } });
    const res = await proxyUi(preview, record, "x", provider(h), "/__alpine/auth/c", "");
    expect(res.headers.getSetCookie()).toEqual(["alpine_preview_sbx_3000=p; Path=/; HttpOnly"]);
    // On the UI's login answer a preview cookie does not pass.
    const ui = await proxyUi(new Request("http://x/"), record, "x", provider(h), "/auth/c", "");
    expect(ui.headers.getSetCookie()).toEqual(["alpine_session_sbx=s; Path=/"]);
  });
});
