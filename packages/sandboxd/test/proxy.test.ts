import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { proxyHttp } from "../src/proxy.ts";

/**
 * sandboxd's UI proxy against a real upstream server standing for whatever
 * runs in the sandbox (OpenCode, or a page it serves): it tries to set alpine's
 * own cookies and a parent-domain cookie.
 */
let upstream: Server;
let proxy: Server;
let proxyPort = 0;

const listen = (s: Server) =>
  new Promise<number>((resolve) =>
    s.listen(0, "127.0.0.1", () => resolve((s.address() as AddressInfo).port)),
  );

beforeAll(async () => {
  upstream = createServer((_req, res) => {
    res.setHeader("set-cookie", [
      "alpine_ui=other-sandbox; Path=/; HttpOnly",
      "alpine_session_sbx_other=stolen; Path=/",
      "ALPINE_UI=upper; Path=/",
      "wide=1; Domain=localhost; Path=/",
      "theme=dark; Path=/; SameSite=Lax",
    ]);
    res.end("ok");
  });
  const upPort = await listen(upstream);
  proxy = createServer((req, res) =>
    proxyHttp(req, res, { port: upPort, authorization: "Basic x" }, "alpine_session"),
  );
  proxyPort = await listen(proxy);
});

afterAll(() => {
  upstream.close();
  proxy.close();
});

describe("the UI proxy's Set-Cookie filter", () => {
  it("content in the sandbox cannot set alpine's cookies or a parent-domain cookie; its own cookies pass", async () => {
    const cookies = await new Promise<string[]>((resolve, reject) => {
      request({ host: "127.0.0.1", port: proxyPort, path: "/" }, (res) => {
        res.resume();
        resolve(res.headers["set-cookie"] ?? []);
      })
        .on("error", reject)
        .end();
    });
    expect(cookies).toEqual(["theme=dark; Path=/; SameSite=Lax"]);
  });
});
