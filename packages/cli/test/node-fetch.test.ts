import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeFetch } from "../src/node-fetch.ts";

/** The node:http fetch the CLI hands SandboxdClient: what the client relies on, as fetch does it. */
let server: Server;
let base = "";
beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      if (req.url === "/json") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ method: req.method, auth: req.headers.authorization, body }));
      } else if (req.url === "/stream") {
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        res.write('{"type":"phase"}\n');
        setTimeout(() => res.end('{"type":"result"}\n'), 50);
      } else if (req.url === "/error") {
        res.writeHead(409, { "content-type": "application/json" });
        res.end('{"reason_code":"x"}');
      } else if (req.url === "/hang") {
        res.writeHead(200);
        res.write("partial");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

describe("nodeFetch", () => {
  it("sends method, headers and a string body; reads JSON", async () => {
    const res = await nodeFetch(`${base}/json`, {
      method: "POST",
      headers: { authorization: "Bearer t", "content-type": "application/json" },
      body: '{"a":1}',
    });
    expect(res.ok).toBe(true);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("application/json");
    expect(await res.json()).toEqual({ method: "POST", auth: "Bearer t", body: '{"a":1}' });
  });

  it("streams a body as a web ReadableStream", async () => {
    const res = await nodeFetch(`${base}/stream`, { method: "POST", body: "{}" });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (value) text += decoder.decode(value, { stream: true });
      if (done) break;
    }
    expect(text).toBe('{"type":"phase"}\n{"type":"result"}\n');
  });

  it("an error status is not ok and its text is readable", async () => {
    const res = await nodeFetch(`${base}/error`);
    expect(res.ok).toBe(false);
    expect(res.status).toBe(409);
    expect(await res.text()).toBe('{"reason_code":"x"}');
  });

  it("a timeout fails the body being read with the signal's TimeoutError", async () => {
    const res = await nodeFetch(`${base}/hang`, { signal: AbortSignal.timeout(200) });
    const reader = res.body!.getReader();
    await reader.read();
    await expect(reader.read()).rejects.toMatchObject({ name: "TimeoutError" });
  });

  it("an unreachable server rejects", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await expect(nodeFetch(`http://127.0.0.1:${port}/json`)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});
