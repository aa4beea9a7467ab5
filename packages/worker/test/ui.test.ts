import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { api, call, cliConfig, gitCredentials } from "./helpers.ts";

const NAME = "ui-one";
let cookie = "";

beforeAll(async () => {
  await api("PUT", "/v1/auth", { entries: { stub: { type: "api", key: inject("modelKey") } } });
  const r = await api("POST", `/v1/sandboxes/${NAME}/launch`, {
    repo: inject("repoUrl"),
    config: cliConfig(),
    credentials: gitCredentials(),
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
});

afterAll(async () => {
  await api("POST", `/v1/sandboxes/${NAME}/teardown`, { force: true });
});

describe("the web UI through the control plane (origin root, routed by cookie)", () => {
  it("a one-time link sets sandboxd's session cookie and the routing cookie, then redirects into the app; a replay is refused", async () => {
    const login = await api("POST", `/v1/sandboxes/${NAME}/login`);
    expect(login.body.web_url).toMatch(new RegExp(`^http://cp\\.test/s/${NAME}/\\?code=\\S+$`));
    const url = new URL(login.body.web_url);
    const res = await call(url.pathname + url.search, { redirect: "manual" });
    expect(res.status).toBe(302);
    const cookies = res.headers.getSetCookie();
    expect(cookies).toContainEqual(
      expect.stringMatching(/^alpine_session_[\w-]+=.+HttpOnly; SameSite=Strict/),
    );
    expect(cookies).toContainEqual(`alpine_ui=${NAME}; HttpOnly; SameSite=Strict; Path=/`);
    // Into OpenCode's page of this workspace (base64url of its path; no task yet, so no session).
    expect(res.headers.get("location")).toMatch(/^\/[\w-]+(\/session\/ses_\w+)?$/);
    cookie = cookies.map((c) => c.split(";")[0]).join("; ");
    const replay = await call(url.pathname + url.search, { redirect: "manual" });
    expect(replay.status).toBe(401);
  });

  it("pages, assets and the API of OpenCode answer at the root; without sandboxd's cookie they do not", async () => {
    const page = await call("/", { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('id="root"');
    const health = await call("/global/health", { headers: { cookie } });
    expect(await health.json()).toMatchObject({ healthy: true });
    // The routing cookie alone gets nowhere: sandboxd checks its own session.
    const routeOnly = await call("/global/health", { headers: { cookie: `alpine_ui=${NAME}` } });
    expect(routeOnly.status).toBe(401);
  });

  it("a path that looks like another host stays a path on sandboxd (no request leaves for that host)", async () => {
    const res = await call("//example.invalid/x", { headers: { cookie } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
  });

  it("the event stream (SSE) streams through", async () => {
    const res = await call("/global/event", { headers: { cookie, accept: "text/event-stream" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toContain("data:");
    await reader.cancel();
  });

  it("the terminal's WebSocket is proxied: a shell in the sandbox echoes through it", async () => {
    const created = await call("/pty", {
      method: "POST",
      headers: { cookie, "content-type": "application/json" },
      body: JSON.stringify({ command: "/bin/sh", title: "test" }),
    });
    expect(created.status, await created.clone().text()).toBe(200);
    const pty = (await created.json()) as { id: string };
    const res = await call(`/pty/${pty.id}/connect?cursor=0`, {
      headers: { cookie, upgrade: "websocket", connection: "Upgrade" },
    });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    let received = "";
    const echoed = new Promise<void>((resolve) => {
      ws.addEventListener("message", (ev) => {
        // The terminal may send binary frames; read them byte by byte (the buffer can come from another realm).
        received +=
          typeof ev.data === "string"
            ? ev.data
            : Array.from(new Uint8Array(ev.data as ArrayBuffer), (b) => String.fromCharCode(b)).join("");
        if (received.includes("hello-from-the-sandbox")) resolve();
      });
    });
    ws.send("echo hello-from-the-sandbox\n");
    await Promise.race([
      echoed,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no echo: ${received}`)), 20_000)),
    ]);
    ws.close();
  });
});
