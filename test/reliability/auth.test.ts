import * as crypto from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type RunningSandboxd, startSandboxd } from "../../packages/sandboxd/test/helpers.ts";
import { recorder, show } from "./harness.ts";

// Counts calls to timingSafeEqual, to prove the bearer check goes through it.
vi.mock("node:crypto", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:crypto")>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});
const { Auth, UI_SESSION_TTL_MS } = await import("../../packages/sandboxd/src/auth.ts");

/**
 * Issue 7, auth and path traversal on sandboxd (the same code in every provider): every /v1
 * route and the UI answer 401 without, with a wrong and with an expired credential (expired:
 * the previous sandboxd's token, cookie and login code after a restart; UI sessions and login
 * codes past their lifetime); login codes cannot be replayed; the token is compared in constant
 * time; no route that takes a path can be made to read, write or delete outside its own dir.
 */
const record = recorder("auth");
let old: RunningSandboxd;
let sbx: RunningSandboxd;
const stale = { token: "", cookie: "", code: "" };

/** One HTTP request written by hand, so the path reaches sandboxd exactly as given (no normalising). */
function raw(
  s: RunningSandboxd,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body = "",
): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: "127.0.0.1", port: s.port });
    let data = "";
    sock.on("data", (d) => (data += d));
    sock.on("error", reject);
    sock.on("end", () => {
      const [head = "", ...rest] = data.split("\r\n\r\n");
      resolve({ status: Number(head.split(" ")[1]), headers: head, body: rest.join("\r\n\r\n") });
    });
    const lines = [
      `${method} ${path} HTTP/1.1`,
      "Host: 127.0.0.1",
      "Connection: close",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ...(body || method === "POST" || method === "PUT"
        ? [`Content-Length: ${Buffer.byteLength(body)}`]
        : []),
    ];
    sock.write(`${lines.join("\r\n")}\r\n\r\n${body}`);
  });
}

async function login(s: RunningSandboxd): Promise<{ code: string; cookie: string }> {
  const minted = await raw(s, "POST", "/v1/login", { authorization: `Bearer ${s.token}` });
  const code = JSON.parse(minted.body).code as string;
  const spare = JSON.parse((await raw(s, "POST", "/v1/login", { authorization: `Bearer ${s.token}` })).body)
    .code as string;
  const redeemed = await raw(s, "GET", `/auth/${code}`);
  expect(redeemed.status).toBe(302);
  const cookie = /set-cookie: ([^;\r\n]+)/i.exec(redeemed.headers)![1]!;
  return { code: spare, cookie };
}

beforeAll(async () => {
  // The sandbox's first sandboxd hands out a token, a cookie and a login code, then goes away.
  old = await startSandboxd({ sandbox_id: "sbx_reliability_auth" });
  const l = await login(old);
  Object.assign(stale, { token: old.token, cookie: l.cookie, code: l.code });
  await old.kill();
  // Its successor on the same dirs (a relaunch): what the old one issued is now expired.
  sbx = await startSandboxd({ sandbox_id: "sbx_reliability_auth" }, old.dirs);
  writeFileSync(join(sbx.dirs.root, "secret.txt"), "HOST-SECRET-OUTSIDE-THE-SANDBOX\n");
  writeFileSync(join(sbx.dirs.workspace, "ws-secret.txt"), "WORKSPACE-SECRET\n");
});
afterAll(async () => {
  await sbx?.kill();
});

describe("sandboxd auth", () => {
  const v1: [string, string][] = [
    ["GET", "/v1/status"],
    ["POST", "/v1/init"],
    ["POST", "/v1/task"],
    ["GET", "/v1/diff"],
    ["POST", "/v1/login"],
    ["POST", "/v1/checkpoint"],
    ["GET", "/v1/checkpoints/ckpt_1/artifacts/workspace.bundle"],
    ["HEAD", "/v1/checkpoints/ckpt_1/artifacts/workspace.bundle"],
    ["DELETE", "/v1/checkpoints/ckpt_1"],
    ["PUT", "/v1/restore/artifacts/workspace.bundle"],
    ["POST", "/v1/restore"],
    ["POST", "/v1/export"],
    ["POST", "/v1/shutdown"],
    ["GET", "/v1/no-such-route"],
    ["GET", "/v1"],
  ];
  const bearers = (): [string, Record<string, string>][] => [
    ["no token", {}],
    ["a wrong token", { authorization: "Bearer wrong-token-0123456789abcdefghij" }],
    ["the token as Basic auth", { authorization: `Basic ${sbx.token}` }],
    ["the token without a scheme", { authorization: sbx.token }],
    ["the previous sandboxd's token (expired)", { authorization: `Bearer ${stale.token}` }],
  ];

  it("every /v1 route: 401 unauthorized without, with a wrong and with an expired token", async () => {
    for (const [method, path] of v1) {
      for (const [what, headers] of bearers()) {
        const r = await raw(sbx, method, path, { ...headers, "content-type": "application/json" }, "{}");
        expect(r.status, `${method} ${path} with ${what}`).toBe(401);
        if (method !== "HEAD") expect(JSON.parse(r.body).reason_code).toBe("unauthorized");
      }
      record({
        kind: "auth",
        target: `${method} ${path}`,
        credential: "none / wrong / expired token",
        outcome: "401",
      });
    }
    // A WebSocket upgrade is never a way into /v1, not even with the right token.
    const up = await raw(sbx, "GET", "/v1/status", {
      authorization: `Bearer ${sbx.token}`,
      upgrade: "websocket",
      connection: "Upgrade",
    });
    expect(up.status).toBe(401);
    record({
      kind: "auth",
      target: "GET /v1/status as a WebSocket upgrade",
      credential: "the right token",
      outcome: "401",
    });
    // And the right token does work (the 401s above are about the credential, not the route).
    expect((await raw(sbx, "GET", "/v1/status", { authorization: `Bearer ${sbx.token}` })).status).toBe(200);
  });

  it("the web UI: 401 without, with a wrong, with another sandbox's and with an expired cookie", async () => {
    const { cookie } = await login(sbx);
    const name = cookie.split("=")[0]!;
    const cookies: [string, Record<string, string>][] = [
      ["no cookie", {}],
      ["a wrong cookie", { cookie: `${name}=not-a-session` }],
      ["another sandbox's cookie name", { cookie: `alpine_session_other=${cookie.split("=")[1]}` }],
      ["the previous sandboxd's cookie (expired)", { cookie: stale.cookie }],
    ];
    for (const path of ["/", "/session", "/global/health", "/file?path=/etc/passwd"]) {
      for (const [what, headers] of cookies) {
        const r = await raw(sbx, "GET", path, headers);
        expect(r.status, `${path} with ${what}`).toBe(401);
      }
      const up = await raw(sbx, "GET", path, {
        cookie: stale.cookie,
        upgrade: "websocket",
        connection: "Upgrade",
      });
      expect(up.status).toBe(401);
      record({
        kind: "auth",
        target: `UI GET ${path} (and upgrade)`,
        credential: "none / wrong / other sandbox's / expired cookie",
        outcome: "401",
      });
    }
    // The fresh cookie is accepted (no agent here: the proxy says the UI is not ready, not 401).
    expect((await raw(sbx, "GET", "/", { cookie })).status).not.toBe(401);
  });

  it("one-time login codes cannot be replayed, and a previous sandboxd's code is dead", async () => {
    const minted = JSON.parse(
      (await raw(sbx, "POST", "/v1/login", { authorization: `Bearer ${sbx.token}` })).body,
    );
    expect((await raw(sbx, "GET", `/auth/${minted.code}`)).status).toBe(302);
    expect((await raw(sbx, "GET", `/auth/${minted.code}`)).status).toBe(401);
    expect((await raw(sbx, "GET", `/auth/${stale.code}`)).status).toBe(401);
    expect((await raw(sbx, "GET", "/auth/")).status).toBe(401);
    record({
      kind: "auth",
      target: "GET /auth/<code>",
      credential: "a code used once already (replay)",
      outcome: "401",
    });
    record({
      kind: "auth",
      target: "GET /auth/<code>",
      credential: "a code of the previous sandboxd (expired)",
      outcome: "401",
    });
  });

  it("login codes expire after 60 s and UI sessions after 12 h", () => {
    const a = new Auth("t".repeat(32), "sbx_x");
    const t0 = 1_000_000;
    const late = a.newLoginCode(t0);
    expect(a.redeem(late.code, t0 + 60_000)).toBeUndefined();
    const session = a.redeem(a.newLoginCode(t0).code, t0)!;
    const cookie = `${a.cookieName}=${session}`;
    expect(a.checkCookie(cookie, t0 + UI_SESSION_TTL_MS - 1)).toBe(true);
    expect(a.checkCookie(cookie, t0 + UI_SESSION_TTL_MS)).toBe(false);
    expect(a.checkCookie(cookie, t0)).toBe(false); // gone once expired
    record({
      kind: "auth",
      target: "GET /auth/<code>",
      credential: "a code 60 s old (expired)",
      outcome: "refused",
    });
    record({
      kind: "auth",
      target: "UI cookie",
      credential: "a session 12 h old (expired)",
      outcome: "refused",
    });
  });

  it("the bearer token is compared in constant time (timingSafeEqual over fixed-size digests)", () => {
    const spy = vi.mocked(crypto.timingSafeEqual);
    const a = new Auth("s".repeat(43), "sbx_x");
    for (const header of [
      "Bearer short",
      `Bearer ${"s".repeat(42)}x`,
      `Bearer ${"s".repeat(43)}`,
      undefined,
    ]) {
      spy.mockClear();
      a.checkBearer(header);
      expect(spy, String(header)).toHaveBeenCalledTimes(1);
      const [x, y] = spy.mock.calls[0]!;
      // Same length whatever was sent: the comparison cannot stop early or leak the length.
      expect([(x as Buffer).length, (y as Buffer).length]).toEqual([32, 32]);
    }
    expect(a.checkBearer(`Bearer ${"s".repeat(43)}`)).toBe(true);
    expect(a.checkBearer(`Bearer ${"s".repeat(42)}x`)).toBe(false);
    record({
      kind: "auth",
      target: "bearer token check",
      credential: "tokens of other lengths and one byte off",
      outcome: "constant-time compare (timingSafeEqual over sha256)",
    });
  });
});

describe("path traversal on every sandboxd route that takes a path", () => {
  const vectors = [
    "..",
    "..%2f..%2fsecret.txt",
    "%2e%2e",
    "%2e%2e%2fsecret.txt",
    ".%2e%2f.%2e%2fsecret.txt",
    "..%5c..%5csecret.txt",
    "%252e%252e%252fsecret.txt",
    "%2fetc%2fpasswd",
    "secret.txt%00.bundle",
    "....%2f%2f....%2f%2fsecret.txt",
    "%c0%ae%c0%ae%2fsecret.txt",
    "ckpt_1%2f..%2f..%2fsecret.txt",
    "workspace",
    "..%2fworkspace%2fws-secret.txt",
  ];
  const auth = () => ({ authorization: `Bearer ${sbx.token}` });

  it("checkpoint artifacts (GET, HEAD), checkpoint delete, restore upload, login codes, the credential helper", async () => {
    const before = readdirSync(sbx.dirs.root).sort();
    for (const v of vectors) {
      const routes: [string, string, Record<string, string>, string][] = [
        ["GET", `/v1/checkpoints/${v}/artifacts/workspace.bundle`, auth(), ""],
        ["GET", `/v1/checkpoints/ckpt_1/artifacts/${v}`, auth(), ""],
        ["HEAD", `/v1/checkpoints/${v}/artifacts/opencode-data.tar.gz`, auth(), ""],
        ["DELETE", `/v1/checkpoints/${v}`, auth(), ""],
        ["PUT", `/v1/restore/artifacts/${v}`, auth(), "PWNED"],
        ["GET", `/auth/${v}`, {}, ""],
      ];
      for (const [method, path, headers, body] of routes) {
        const r = await raw(sbx, method, path, headers, body);
        // Refused (not found, bad request, unauthorized) — or, for DELETE of a well-formed id, a no-op.
        expect([200, 400, 401, 404], `${method} ${path}`).toContain(r.status);
        if (r.status === 200) expect(method, `${method} ${path}`).toBe("DELETE");
        expect(r.body).not.toContain("HOST-SECRET");
        expect(r.body).not.toContain("WORKSPACE-SECRET");
        expect(r.body).not.toContain("root:x:0:0");
        const reason = r.body
          ? (JSON.parse(r.body.startsWith("{") ? r.body : "{}").reason_code ?? `HTTP ${r.status}`)
          : `HTTP ${r.status}`;
        record({
          kind: "input",
          surface: `sandboxd ${method} ${path.replace(v, "…")}`,
          input: show(v),
          reason_code: String(reason),
          outcome: `HTTP ${r.status}, nothing outside read, written or deleted`,
        });
      }
    }
    // Nothing was deleted or created around the sandbox's own dirs.
    expect(readFileSync(join(sbx.dirs.root, "secret.txt"), "utf8")).toContain("HOST-SECRET");
    expect(readFileSync(join(sbx.dirs.workspace, "ws-secret.txt"), "utf8")).toContain("WORKSPACE-SECRET");
    expect(readdirSync(sbx.dirs.root).sort()).toEqual(before);
    const staging = join(sbx.dirs.root, "checkpoints", ".restore");
    for (const f of existsSync(staging) ? readdirSync(staging) : [])
      expect(["workspace.bundle", "opencode-data.tar.gz"]).toContain(f);
  });
});
