import { describe, expect, it } from "vitest";
import {
  CONTROL_PLANE_ROUTES,
  parseRouteRequest,
  ROUTE_NAMES,
  routeOf,
  routePath,
} from "../src/control-plane-routes.ts";
import { AlpineError } from "../src/errors.ts";

describe("the control plane's route table", () => {
  it("keeps the wire's paths and methods", () => {
    const wire = Object.fromEntries(
      ROUTE_NAMES.map((n) => [n, `${CONTROL_PLANE_ROUTES[n].method} ${CONTROL_PLANE_ROUTES[n].path}`]),
    );
    expect(wire).toEqual({
      list: "GET /v1/sandboxes",
      auth: "PUT /v1/auth",
      audit: "GET /v1/audit",
      secrets_ls: "GET /v1/secrets",
      secrets_set: "PUT /v1/secrets",
      secrets_rm: "POST /v1/secrets/rm",
      environments: "GET /v1/environments",
      environments_rm: "POST /v1/environments/rm",
      sessions: "GET /v1/sessions",
      revoke_sessions: "POST /v1/sessions/revoke",
      gc: "POST /v1/gc",
      status: "GET /v1/sandboxes/:name",
      launch: "POST /v1/sandboxes/:name/launch",
      task: "POST /v1/sandboxes/:name/task",
      diff: "GET /v1/sandboxes/:name/diff",
      login: "POST /v1/sandboxes/:name/login",
      logs: "GET /v1/sandboxes/:name/logs",
      checkpoint: "POST /v1/sandboxes/:name/checkpoint",
      export: "POST /v1/sandboxes/:name/export",
      teardown: "POST /v1/sandboxes/:name/teardown",
    });
  });

  it("streams exactly the long operations, and every mutating POST carries the config field", () => {
    const streamed = ROUTE_NAMES.filter((n) => CONTROL_PLANE_ROUTES[n].streamed).sort();
    expect(streamed).toEqual(["checkpoint", "export", "launch", "task", "teardown"]);
    for (const n of ROUTE_NAMES) {
      const r = CONTROL_PLANE_ROUTES[n];
      if (r.streamed) expect(r.method).toBe("POST");
      if (r.method === "GET") expect(r.mutates).toBe(false);
      // The sandbox keeps the config of its last mutating request for its alarm (auth is the registry's).
      const shape = (r.request as unknown as { shape: Record<string, unknown> }).shape;
      if (r.mutates && r.target !== "registry") expect(Object.keys(shape)).toContain("config");
    }
  });

  it("fills in and encodes the sandbox name, and refuses a sandbox route without one", () => {
    expect(routePath("launch", "a b")).toBe("/v1/sandboxes/a%20b/launch");
    expect(routePath("list")).toBe("/v1/sandboxes");
    expect(() => routePath("status")).toThrow(/needs a sandbox name/);
  });

  it("finds a route by method and name only when both match", () => {
    expect(routeOf("POST", "launch")).toBe("launch");
    expect(routeOf("GET", "launch")).toBeNull();
    expect(routeOf("GET", "toString")).toBeNull();
    expect(routeOf("GET", "nope")).toBeNull();
  });

  it("parses GET queries with defaults and coercions", () => {
    expect(parseRouteRequest("logs", { query: new URLSearchParams("after_seq=7") })).toEqual({
      tail: 200,
      after_seq: 7,
    });
    expect(parseRouteRequest("diff", { query: new URLSearchParams("stat=1") })).toEqual({ stat: true });
    expect(parseRouteRequest("diff", { query: new URLSearchParams() })).toEqual({ stat: false });
  });

  it("parses bodies (empty is {}) and reports what does not fit as usage_invalid", () => {
    expect(parseRouteRequest("teardown", { body: "" })).toEqual({});
    expect(parseRouteRequest("teardown", { body: '{"force":true}' })).toEqual({ force: true });
    const notJson = (() => {
      try {
        parseRouteRequest("task", { body: "{" });
      } catch (err) {
        return err;
      }
    })();
    expect(notJson).toBeInstanceOf(AlpineError);
    expect((notJson as AlpineError).reason).toBe("usage_invalid");
    expect(() => parseRouteRequest("task", { body: '{"wait":true}' })).toThrow(/request body is invalid/);
    expect(() => parseRouteRequest("logs", { query: new URLSearchParams("tail=-1") })).toThrow(AlpineError);
  });
});
