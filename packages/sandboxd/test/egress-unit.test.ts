import { mkdtempSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EgressProxy, hostAllowed, isPrivateAddress } from "../src/egress-proxy.ts";
import { Logger } from "../src/log.ts";
import { ModelBroker } from "../src/model-broker.ts";

/* The egress proxy's rules and the model broker, over real sockets on 127.0.0.1 (no OpenCode). */

const log = new Logger(join(mkdtempSync(join(tmpdir(), "alpine-egress-")), "log"), { component: "test" });

describe("egress rules", () => {
  it("an allow-list entry admits its host on 80/443, its port, or its subdomains", () => {
    const allow = ["example.com", "*.pkg.dev", "mirror.internal:8443"];
    expect(hostAllowed(allow, "example.com", 443)).toBe(true);
    expect(hostAllowed(allow, "EXAMPLE.com.", 80)).toBe(true);
    expect(hostAllowed(allow, "example.com", 22)).toBe(false);
    expect(hostAllowed(allow, "evil-example.com", 443)).toBe(false);
    expect(hostAllowed(allow, "a.pkg.dev", 443)).toBe(true);
    expect(hostAllowed(allow, "pkg.dev", 443)).toBe(false);
    expect(hostAllowed(allow, "mirror.internal", 8443)).toBe(true);
    expect(hostAllowed(allow, "mirror.internal", 443)).toBe(false);
  });

  it("loopback, private, link-local (metadata) and mapped addresses are private", () => {
    for (const a of ["127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1"])
      expect(isPrivateAddress(a), a).toBe(true);
    for (const a of ["::1", "::", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "not-an-ip"])
      expect(isPrivateAddress(a), a).toBe(true);
    for (const a of ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8"])
      expect(isPrivateAddress(a), a).toBe(false);
  });
});

describe("model broker and egress proxy", () => {
  const KEY = "sk-real-key-0123456789";
  let upstream: Server;
  const seen: { path: string; auth: string | undefined; apiKey: string | undefined }[] = [];
  let broker: ModelBroker;
  let proxy: EgressProxy;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      seen.push({
        path: req.url ?? "",
        auth: req.headers.authorization,
        apiKey: req.headers["x-api-key"] as string,
      });
      res.end("ok");
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", () => r()));
    const port = (upstream.address() as AddressInfo).port;
    broker = new ModelBroker(log, ["stub"], {
      provider: { stub: { options: { baseURL: `http://127.0.0.1:${port}/v1` } } },
    });
    proxy = new EgressProxy({ allow: ["localhost"], enforced: true, broker, log });
    await proxy.listen({ port: 0 });
  });
  afterAll(() => {
    proxy.close();
    upstream.close();
  });

  function call(path: string, headers: Record<string, string>): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: proxy.port, path, method: "POST", headers }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end("{}");
    });
  }

  it("OpenCode gets the token in place of the key and the broker's address as baseURL", () => {
    const auth = broker.setAuth({ stub: { type: "api", key: KEY } });
    expect(JSON.stringify(auth)).not.toContain(KEY);
    expect(auth).toEqual({ stub: { type: "api", key: broker.token } });
    const config = broker.opencodeConfig(
      { provider: { stub: { options: { apiKey: KEY, baseURL: "x" } } } },
      "B",
    );
    expect(JSON.stringify(config)).not.toContain(KEY);
    expect(config).toEqual({
      provider: { stub: { options: { apiKey: broker.token, baseURL: "B/model/stub" } } },
    });
  });

  it("forwards with the real key wherever the token was, and only with the token", async () => {
    broker.setAuth({ stub: { type: "api", key: KEY } });
    expect(await call("/model/stub/chat/completions?x=1", { authorization: `Bearer ${broker.token}` })).toBe(
      200,
    );
    expect(await call("/model/stub/messages", { "x-api-key": broker.token })).toBe(200);
    expect(seen).toEqual([
      { path: "/v1/chat/completions?x=1", auth: `Bearer ${KEY}`, apiKey: undefined },
      { path: "/v1/messages", auth: undefined, apiKey: KEY },
    ]);
    expect(await call("/model/stub/chat/completions", { authorization: "Bearer another-token" })).toBe(401);
    expect(await call("/model/other/chat/completions", { authorization: `Bearer ${broker.token}` })).toBe(
      404,
    );
    expect(seen).toHaveLength(2);
  });

  function connectVia(target: string, auth: boolean): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = connect(proxy.port, "127.0.0.1", () => {
        const header = auth
          ? `Proxy-Authorization: Basic ${Buffer.from(`alpine:${broker.token}`).toString("base64")}\r\n`
          : "";
        s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${header}\r\n`);
      });
      let got = "";
      s.on("data", (d) => {
        got += d.toString();
        if (got.includes("\r\n\r\n")) {
          s.destroy();
          resolve(got.split("\r\n")[0]!);
        }
      });
      s.on("error", reject);
      s.on("end", () => resolve(got.split("\r\n")[0]!));
    });
  }

  it("CONNECT needs the token, an allowed host and a public address; refusals are counted", async () => {
    expect(await connectVia("example.com:443", false)).toMatch(/ 407 /);
    expect(await connectVia("example.com:443", true)).toMatch(/ 403 /);
    // Allowed by name, but it resolves to loopback (what DNS rebinding would do).
    expect(await connectVia("localhost:443", true)).toMatch(/ 403 /);
    expect(await connectVia("169.254.169.254:80", true)).toMatch(/ 403 /);
    const s = proxy.status();
    expect(s).toMatchObject({ policy: "allow", enforced: true, allowed: 0, refused: 3 });
    expect(s.refused_hosts).toEqual(["example.com:443", "localhost:443", "169.254.169.254:80"]);
  });
});

describe("model broker behind the owner's proxy", () => {
  it("reaches the model API through HTTP(S)_PROXY when sandboxd was given one", async () => {
    const via: string[] = [];
    const ownerProxy = createServer((req, res) => {
      via.push(req.url ?? "");
      res.end("ok");
    });
    await new Promise<void>((r) => ownerProxy.listen(0, "127.0.0.1", () => r()));
    const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY };
    process.env.HTTP_PROXY = `http://127.0.0.1:${(ownerProxy.address() as AddressInfo).port}`;
    delete process.env.NO_PROXY;
    try {
      const broker = new ModelBroker(log, ["m"], {
        provider: { m: { options: { baseURL: "http://model.example/v1" } } },
      });
      broker.setAuth({ m: { type: "api", key: "sk-owner-proxy" } });
      const proxy = new EgressProxy({ allow: null, enforced: false, broker, log });
      await proxy.listen({ port: 0 });
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: "127.0.0.1",
            port: proxy.port,
            path: "/model/m/chat",
            method: "POST",
            headers: { authorization: `Bearer ${broker.token}` },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end("{}");
      });
      proxy.close();
      expect(status).toBe(200);
      expect(via).toEqual(["http://model.example/v1/chat"]);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      ownerProxy.close();
    }
  });
});

describe("credentials the broker cannot stand in for", () => {
  it("an OAuth entry reaches OpenCode as it is, and its provider keeps its own address", () => {
    const broker = new ModelBroker(log, ["openai", "anthropic"], {});
    const oauth = { type: "oauth", refresh: "r", access: "a", expires: 1 };
    const auth = broker.setAuth({ openai: oauth, anthropic: { type: "api", key: "sk-ant-real" } });
    expect(auth).toEqual({ openai: oauth, anthropic: { type: "api", key: broker.token } });
    const config = broker.opencodeConfig({}, "B") as { provider: Record<string, unknown> };
    expect(Object.keys(config.provider)).toEqual(["anthropic"]);
  });
});
