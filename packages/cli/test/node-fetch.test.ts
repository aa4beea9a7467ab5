import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeFetch } from "../src/node-fetch.ts";

/** The node:http fetch the CLI hands SandboxdClient: what the client relies on, as fetch does it. */
let server: Server;
let base = "";
beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("latin1");
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
      } else if (req.url?.startsWith("/v1/checkpoints/")) {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.end(Buffer.alloc(100_000, 7));
      } else if (req.url === "/v1/restore/artifacts/workspace.bundle") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            bytes: Buffer.byteLength(body, "latin1"),
            chunked: req.headers["transfer-encoding"],
          }),
        );
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

  it("a checkpoint artifact comes over node:http: the process never loads undici (Node's fetch)", async () => {
    // In a process of its own (vitest's loads undici itself), as the CLI runs it.
    const src = fileURLToPath(new URL("../src/node-fetch.ts", import.meta.url));
    const script = `
      const { nodeFetch } = await import(${JSON.stringify(src)});
      const res = await nodeFetch(${JSON.stringify(`${base}/v1/checkpoints/ckpt_1/artifacts/workspace.bundle`)}, { method: "GET", headers: {} });
      let bytes = 0;
      for await (const chunk of res.body) bytes += chunk.length;
      console.log(JSON.stringify({ status: res.status, bytes, undici: process.moduleLoadList.filter((m) => m.includes("undici")) }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script]);
    expect(JSON.parse(stdout)).toEqual({ status: 200, bytes: 100_000, undici: [] });
  });

  it("a restore's artifact streams up over node:http: the process never loads undici", async () => {
    const src = fileURLToPath(new URL("../src/node-fetch.ts", import.meta.url));
    const script = `
      const { nodeFetch } = await import(${JSON.stringify(src)});
      let left = 3;
      const body = new ReadableStream({ pull(c) { if (left-- > 0) c.enqueue(new Uint8Array(64 * 1024).fill(9)); else c.close(); } });
      const res = await nodeFetch(${JSON.stringify(`${base}/v1/restore/artifacts/workspace.bundle`)}, { method: "PUT", headers: { "content-type": "application/octet-stream" }, body, duplex: "half" });
      console.log(JSON.stringify({ status: res.status, got: await res.json(), undici: process.moduleLoadList.filter((m) => m.includes("undici")) }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script]);
    expect(JSON.parse(stdout)).toEqual({
      status: 200,
      got: { bytes: 3 * 64 * 1024, chunked: "chunked" },
      undici: [],
    });
  });

  it("a streamed body that fails fails the request", async () => {
    const body = new ReadableStream({
      pull(c) {
        c.error(new Error("the file went away"));
      },
    });
    await expect(
      nodeFetch(`${base}/v1/restore/artifacts/workspace.bundle`, {
        method: "PUT",
        body,
        duplex: "half",
      } as RequestInit),
    ).rejects.toThrow("the file went away");
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
