import { env, exports } from "cloudflare:workers";
import type { ListItemView } from "@alpine/core";
import { describe, expect, inject, it } from "vitest";

/**
 * The dashboard at `/` of the control plane (docs/dashboard.md, dashboard-routes.ts): it lists
 * the registry's sandboxes for the admin token (bearer, or the cookie of a one-time link), refuses
 * everything without it, refuses a POST without the page's CSRF token, and leaves requests that
 * carry the web UI's routing cookie to the UI proxy.
 */
const TOKEN = inject("controlPlaneToken");
const ORIGIN = "http://cp.test";
const call = (path: string, init: RequestInit = {}) =>
  exports.default.fetch(new Request(`${ORIGIN}${path}`, init));
const bearer = { authorization: `Bearer ${TOKEN}` };

const item: ListItemView = {
  name: "dash-wk",
  id: "sbx_dash_wk",
  provider: "cloudflare",
  repo: "https://git.example/app.git",
  branch: "alpine/dash-wk",
  image_profile: "default",
  state: "completed",
  agent: "needs_input",
  agent_reason: "asks whether to continue",
  usage: { input: 1200, output: 300, reasoning: 0, cache_read: 0, cache_write: 0, cost: 0.042 },
  last_activity: "2026-12-07T06:00:00.000Z",
  created_at: "2026-12-07T05:00:00.000Z",
  changed_files: ["src/a.ts", "README.md"],
  changes_seen_at: "2026-12-07T06:00:00.000Z",
  overlaps: [],
  disk_bytes: null,
};

describe("the dashboard on the Worker", () => {
  it("the list renders the registry's sandboxes for the admin token, and nothing without it", async () => {
    await env.REGISTRY.getByName("registry").upsert(item, new Date().toISOString());
    const anonymous = await call("/");
    expect(anonymous.status).toBe(401);
    const hint = await anonymous.text();
    expect(hint).toContain("alpine open");
    expect(hint).not.toContain("dash-wk");
    expect((await call("/api/list")).status).toBe(401);
    expect((await call("/", { headers: { authorization: "Bearer wrong-token-0123456789" } })).status).toBe(
      401,
    );

    const res = await call("/", { headers: bearer });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    const page = await res.text();
    for (const text of [
      "dash-wk",
      "needs_input",
      "asks whether to continue",
      "alpine/dash-wk",
      "$0.0420",
      '<td data-label="Changed files" class="changed">2</td>',
    ])
      expect(page).toContain(text);
    const live = (await (await call("/api/list", { headers: bearer })).json()) as {
      sections: Record<string, string>;
    };
    expect(live.sections["live-list"]).toContain("dash-wk");
  });

  it("an action refuses without authentication, and without the page's CSRF token", async () => {
    const form = {
      "content-type": "application/x-www-form-urlencoded",
      origin: ORIGIN,
      accept: "application/json",
    };
    const anonymous = await call("/sandboxes/dash-wk/teardown", {
      method: "POST",
      headers: form,
      body: "force=1",
    });
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { reason_code: string }).reason_code).toBe("unauthorized");
    const noToken = await call("/sandboxes/dash-wk/teardown", {
      method: "POST",
      headers: { ...form, ...bearer },
      body: "force=1",
    });
    expect(noToken.status).toBe(403);
    const otherOrigin = await call("/sandboxes/dash-wk/teardown", {
      method: "POST",
      headers: { ...form, ...bearer, origin: "https://evil.example" },
      body: `force=1&csrf=${/data-csrf="([^"]+)"/.exec(await (await call("/", { headers: bearer })).text())![1]}`,
    });
    expect(otherOrigin.status).toBe(403);
    // Nothing reached the sandbox: the registry still lists it as it was.
    expect((await env.REGISTRY.getByName("registry").list()).find((i) => i.name === "dash-wk")?.state).toBe(
      "completed",
    );
  });

  it("a one-time link sets the dashboard's cookie once; a reused link is refused", async () => {
    expect((await call("/dashboard/login-link", { method: "POST" })).status).toBe(401);
    const minted = (await (
      await call("/dashboard/login-link", { method: "POST", headers: bearer })
    ).json()) as {
      login_url: string;
    };
    const path = new URL(minted.login_url).pathname;
    expect(path).toMatch(/^\/login\//);
    const first = await call(path, { redirect: "manual" });
    expect(first.status).toBe(303);
    const setCookie = first.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/^alpine_dashboard=.+; HttpOnly; SameSite=Strict/);
    const cookie = setCookie.split(";")[0]!;
    expect((await call(path, { redirect: "manual" })).status).toBe(401);
    const page = await call("/", { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("dash-wk");
    // A forged session (right shape, wrong signature) is refused.
    const forged = cookie.replace(/.$/, (ch) => (ch === "A" ? "B" : "A"));
    expect((await call("/", { headers: { cookie: forged } })).status).toBe(401);
  });

  it("a request carrying the web UI's routing cookie stays the UI's", async () => {
    const res = await call("/", { headers: { ...bearer, cookie: "alpine_ui=dash-wk" } });
    expect(await res.text()).not.toContain("<h1>Sandboxes</h1>");
  });
});
