import { exports } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";

const TOKEN = inject("controlPlaneToken");
const call = (path: string, init: RequestInit = {}) =>
  exports.default.fetch(new Request(`http://cp.test${path}`, init));

/** Every /v1 route, with a method it accepts. */
const ROUTES: [string, string][] = [
  ["GET", "/v1/sandboxes"],
  ["GET", "/v1/sandboxes/demo"],
  ["POST", "/v1/sandboxes/demo/launch"],
  ["POST", "/v1/sandboxes/demo/task"],
  ["POST", "/v1/sandboxes/demo/checkpoint"],
  ["POST", "/v1/sandboxes/demo/export"],
  ["POST", "/v1/sandboxes/demo/teardown"],
  ["POST", "/v1/sandboxes/demo/login"],
  ["GET", "/v1/sandboxes/demo/diff"],
  ["GET", "/v1/sandboxes/demo/logs"],
  ["POST", "/v1/gc"],
  ["PUT", "/v1/auth"],
  ["GET", "/v1/nonexistent"],
];

const ERROR_KEYS = ["details", "error", "exit_code", "reason_code", "retryable"];

describe("authentication on every /v1 route", () => {
  it("/healthz is open", async () => {
    const res = await call("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });

  for (const [method, path] of ROUTES) {
    it(`${method} ${path} refuses no token, a wrong token and a token with extra bytes`, async () => {
      for (const authorization of [
        undefined,
        "Bearer wrong-token-wrong-token",
        `Bearer ${TOKEN}x`,
        TOKEN,
        `Basic ${TOKEN}`,
      ]) {
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (authorization) headers.authorization = authorization;
        const res = await call(path, { method, headers, body: method === "GET" ? undefined : "{}" });
        expect(res.status, `${method} ${path} with ${authorization}`).toBe(401);
        const body = (await res.json()) as Record<string, unknown>;
        expect(Object.keys(body).sort()).toEqual(ERROR_KEYS);
        expect(body).toMatchObject({ reason_code: "unauthorized", exit_code: 1, retryable: false });
      }
    });
  }

  it("the right token passes (an unknown sandbox is sandbox_not_found, in the CLI's error shape)", async () => {
    const res = await call("/v1/sandboxes/nobody-here", { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: "sandbox 'nobody-here' not found",
      exit_code: 1,
      reason_code: "sandbox_not_found",
      retryable: false,
      details: { name: "nobody-here" },
    });
  });

  it("an invalid name is name_invalid", async () => {
    const res = await call("/v1/sandboxes/Bad_Name", { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { reason_code: string }).reason_code).toBe("name_invalid");
  });

  it("the web UI without a login cookie is a 401 page, and sandboxd's internal routes are never proxied", async () => {
    const res = await call("/");
    expect(res.status).toBe(401);
    expect(await res.text()).toContain("alpine open");
    const internal = await call("/internal/credential/x", {
      method: "POST",
      headers: { cookie: "alpine_ui=demo" },
    });
    expect(internal.status).toBe(404);
    const login = await call("/s/demo/");
    expect(login.status).toBe(401);
  });
});
