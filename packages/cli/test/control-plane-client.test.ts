import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ControlPlaneClient } from "../src/remote/client.ts";

type Handler = (req: IncomingMessage, res: ServerResponse, hit: number) => void;
const servers: Server[] = [];

async function serve(handler: Handler): Promise<{ url: string; hits: () => number; auth: string[] }> {
  let hits = 0;
  const auth: string[] = [];
  const server = createServer((req, res) => {
    hits += 1;
    auth.push(req.headers.authorization ?? "");
    handler(req, res, hits);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits, auth };
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const error = (reason: string, exit: 1 | 2, retryable: boolean) =>
  JSON.stringify({
    error: `e ${reason}`,
    exit_code: exit,
    reason_code: reason,
    retryable,
    details: { x: 1 },
  });

describe("the cloudflare provider's HTTP client", () => {
  it("cannot connect: control_plane_unreachable (exit 2, retryable) after retrying", async () => {
    const s = await serve(() => {});
    const url = s.url;
    servers.pop()!.close();
    await new Promise((r) => setTimeout(r, 50));
    const client = new ControlPlaneClient({ url, token: "t".repeat(20), attempts: 2 });
    await expect(client.json("POST", "/v1/sandboxes/x/launch", {})).rejects.toMatchObject({
      reason: "control_plane_unreachable",
      exitCode: 2,
      retryable: true,
      details: { connected: false },
    });
  });

  it("retries a retryable failure of a GET with backoff, then succeeds; the token goes in the header only", async () => {
    const s = await serve((_req, res, hit) => {
      if (hit < 3) {
        res.writeHead(503, { "content-type": "application/json" }).end(error("sandbox_unavailable", 2, true));
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end("[]");
    });
    const client = new ControlPlaneClient({ url: s.url, token: "secret-token-0123456789" });
    expect(await client.json("GET", "/v1/sandboxes")).toEqual([]);
    expect(s.hits()).toBe(3);
    expect(s.auth.every((a) => a === "Bearer secret-token-0123456789")).toBe(true);
  });

  it("does not retry operation_in_progress or a non-retryable error; both come through unchanged", async () => {
    const busy = await serve((_req, res) =>
      res.writeHead(409, { "content-type": "application/json" }).end(error("operation_in_progress", 2, true)),
    );
    const c1 = new ControlPlaneClient({ url: busy.url, token: "t".repeat(20) });
    await expect(c1.json("POST", "/v1/sandboxes/x/teardown", {})).rejects.toMatchObject({
      reason: "operation_in_progress",
      details: { x: 1 },
    });
    expect(busy.hits()).toBe(1);
    const missing = await serve((_req, res) =>
      res.writeHead(404, { "content-type": "application/json" }).end(error("sandbox_not_found", 1, false)),
    );
    const c2 = new ControlPlaneClient({ url: missing.url, token: "t".repeat(20) });
    await expect(c2.json("GET", "/v1/sandboxes/x")).rejects.toMatchObject({
      reason: "sandbox_not_found",
      message: "e sandbox_not_found",
    });
    expect(missing.hits()).toBe(1);
  });

  it("an answer that is not the error shape is control_plane_error", async () => {
    const s = await serve((_req, res) => res.writeHead(500).end("upstream exploded"));
    const client = new ControlPlaneClient({ url: s.url, token: "t".repeat(20), attempts: 1 });
    await expect(client.json("POST", "/v1/gc", {})).rejects.toMatchObject({
      reason: "control_plane_error",
      details: { status: 500 },
    });
  });

  it("a streamed operation reports progress and returns its result; its error keeps its reason", async () => {
    const s = await serve((req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write(`${JSON.stringify({ type: "progress", step: "cloning" })}\n`);
      res.write(`${JSON.stringify({ type: "heartbeat" })}\n`);
      if (req.url?.includes("fail")) {
        res.end(
          `${JSON.stringify({ type: "result", ok: false, error: JSON.parse(error("teardown_blocked", 1, false)) })}\n`,
        );
      } else res.end(`${JSON.stringify({ type: "result", ok: true, value: { name: "x" } })}\n`);
    });
    const client = new ControlPlaneClient({ url: s.url, token: "t".repeat(20) });
    const steps: string[] = [];
    const value = await client.stream(
      "/v1/sandboxes/x/launch",
      {},
      { step: (x) => steps.push(x), warn() {} },
    );
    expect(value).toEqual({ name: "x" });
    expect(steps).toEqual(["cloning"]);
    await expect(client.stream("/v1/sandboxes/fail/teardown", {})).rejects.toMatchObject({
      reason: "teardown_blocked",
    });
  });

  it("a stream that goes silent is control_plane_unreachable, saying the operation may still run", async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write(`${JSON.stringify({ type: "progress", step: "cloning" })}\n`);
    });
    const client = new ControlPlaneClient({ url: s.url, token: "t".repeat(20), idleTimeoutMs: 300 });
    await expect(client.stream("/v1/sandboxes/x/launch", {})).rejects.toMatchObject({
      reason: "control_plane_unreachable",
      message: expect.stringContaining("may still be running"),
    });
  });

  it("builds each route's request from the route table: method, encoded path, query or JSON body", async () => {
    const seen: { method: string; url: string; accept: string; body: string }[] = [];
    const s = await serve((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        seen.push({
          method: req.method ?? "",
          url: req.url ?? "",
          accept: String(req.headers.accept),
          body,
        });
        if (String(req.headers.accept).includes("ndjson")) {
          res.writeHead(200, { "content-type": "application/x-ndjson" });
          res.end(`${JSON.stringify({ type: "result", ok: true, value: { via: "stream" } })}\n`);
        } else res.writeHead(200, { "content-type": "application/json" }).end('{"via":"json"}');
      });
    });
    const client = new ControlPlaneClient({ url: `${s.url}/`, token: "t".repeat(20) });
    expect(await client.call("logs", { tail: "5", after_seq: undefined }, { sandbox: "my box" })).toEqual({
      via: "json",
    });
    expect(await client.call("diff", { stat: undefined }, { sandbox: "x" })).toEqual({ via: "json" });
    expect(await client.call("teardown", { force: true }, { sandbox: "x" })).toEqual({ via: "stream" });
    expect(await client.call("auth", { entries: { p: 1 } })).toEqual({ via: "json" });
    await client.start("launch", { repo: "r" }, { sandbox: "x" });
    expect(seen.map(({ method, url }) => `${method} ${url}`)).toEqual([
      "GET /v1/sandboxes/my%20box/logs?tail=5",
      "GET /v1/sandboxes/x/diff",
      "POST /v1/sandboxes/x/teardown",
      "PUT /v1/auth",
      "POST /v1/sandboxes/x/launch",
    ]);
    expect(seen[0]!.body).toBe("");
    expect(seen[2]!.accept).toBe("application/x-ndjson");
    expect(JSON.parse(seen[2]!.body)).toEqual({ force: true });
    expect(JSON.parse(seen[3]!.body)).toEqual({ entries: { p: 1 } });
  });

  it("a detached start reports an operation that failed at once", async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.end(
        `${JSON.stringify({ type: "result", ok: false, error: JSON.parse(error("sandbox_identity_conflict", 1, false)) })}\n`,
      );
    });
    const client = new ControlPlaneClient({ url: s.url, token: "t".repeat(20) });
    await expect(client.start("launch", {}, { sandbox: "x" })).rejects.toMatchObject({
      reason: "sandbox_identity_conflict",
    });
  });

  it("a malformed stream line is control_plane_error, not a crash", async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.end("{not json\n");
    });
    const client = new ControlPlaneClient({ url: s.url, token: "t".repeat(20) });
    await expect(client.stream("/v1/sandboxes/x/task", {})).rejects.toMatchObject({
      reason: "control_plane_error",
      message: expect.stringContaining("malformed"),
    });
  });

  it("a stream outlives the per-attempt timeout while heartbeats arrive (the timeout is for the answer's headers)", async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      let beats = 0;
      const timer = setInterval(() => {
        beats += 1;
        if (beats < 8) {
          res.write(`${JSON.stringify({ type: "heartbeat" })}\n`);
          return;
        }
        clearInterval(timer);
        res.end(`${JSON.stringify({ type: "result", ok: true, value: { done: beats } })}\n`);
      }, 100);
    });
    const client = new ControlPlaneClient({
      url: s.url,
      token: "t".repeat(20),
      timeoutMs: 300,
      idleTimeoutMs: 1000,
    });
    expect(await client.stream("/v1/sandboxes/x/launch", {})).toEqual({ done: 8 });
  });
});
