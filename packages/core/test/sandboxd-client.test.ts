import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AlpineError } from "../src/errors.ts";
import type { SandboxdStatus } from "../src/sandboxd-api.ts";
import { SandboxdClient } from "../src/sandboxd-client.ts";

const SHA = "a".repeat(40);
const SHA256 = "b".repeat(64);

const status: SandboxdStatus = {
  sandbox_id: "sb_1",
  name: "hello",
  phase: "ready",
  error: null,
  workspace: {
    repo: "https://example.test/r.git",
    branch: "alpine/hello",
    base_commit: SHA,
    head: SHA,
    dirty: false,
    changed_files: [],
    ahead: 0,
    tree_hash: null,
  },
  agent: { state: "idle", last_activity: null, session_id: null },
  task: null,
  opencode: { version: "1.0.0", pid: 42, restarts: 0, ready: true, started_at: "2026-01-01T00:00:00.000Z" },
};

const manifest = {
  schema_version: 1 as const,
  checkpoint_id: "cp_1",
  sandbox_id: "sb_1",
  created_at: "2026-01-01T00:00:00.000Z",
  branch: "alpine/hello",
  base_commit: SHA,
  head_commit: SHA,
  checkpoint_commit: SHA,
  tree_hash: SHA,
  artifacts: [{ name: "workspace.bundle", sha256: SHA256, bytes: 10 }],
};

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | null;
  duplex?: string;
}

/** A fetch that records each request and answers with `answer(request)`. */
function stubFetch(answer: (req: Seen) => Response | Promise<Response>) {
  const seen: Seen[] = [];
  const impl = (async (input: RequestInfo | URL, init?: RequestInit & { duplex?: string }) => {
    const body = init?.body;
    const text =
      body === undefined || body === null
        ? null
        : typeof body === "string"
          ? body
          : await new Response(body as ReadableStream).text();
    const req: Seen = {
      method: init?.method ?? "GET",
      url: String(input),
      headers: { ...(init?.headers as Record<string, string>) },
      body: text,
      duplex: init?.duplex,
    };
    seen.push(req);
    return answer(req);
  }) as typeof fetch;
  return { seen, impl };
}

const json = (value: unknown, status = 200) =>
  new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });

const ndjson = (lines: unknown[], status = 200) =>
  new Response(lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n"), { status });

function client(answer: (req: Seen) => Response | Promise<Response>, extra: { timeoutMs?: number } = {}) {
  const { seen, impl } = stubFetch(answer);
  return {
    seen,
    c: new SandboxdClient({ baseUrl: "http://sbx.test:9000//", token: "t0ken", fetch: impl, ...extra }),
  };
}

async function rejection(p: Promise<unknown>): Promise<AlpineError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AlpineError);
    return err as AlpineError;
  }
  throw new Error("expected a rejection");
}

describe("SandboxdClient requests", () => {
  it("sends health without auth and the rest with the bearer token", async () => {
    const { seen, c } = client((req) =>
      req.url.endsWith("/healthz") ? json({ ok: true, phase: "ready" }) : json(status),
    );
    expect(await c.health()).toEqual({ ok: true, phase: "ready" });
    expect(await c.status()).toEqual(status);
    expect(seen[0]).toMatchObject({ method: "GET", url: "http://sbx.test:9000/healthz", body: null });
    expect(seen[0]!.headers.authorization).toBeUndefined();
    expect(seen[1]!.url).toBe("http://sbx.test:9000/v1/status");
    expect(seen[1]!.headers.authorization).toBe("Bearer t0ken");
    expect(seen[1]!.headers["content-type"]).toBeUndefined();
  });

  it("maps each JSON method to its route, method and body", async () => {
    const answers: Record<string, unknown> = {
      "POST /v1/task": { session_id: "s1", accepted: true },
      "GET /v1/diff": { files: [], patch: "" },
      "GET /v1/diff?stat=1": { files: [{ path: "a", status: "added", insertions: 1, deletions: 0 }] },
      "POST /v1/login": { code: "c", expires_at: "2026-01-01T00:00:00.000Z", path: "/login/c" },
      "POST /v1/shutdown": { ok: true },
      "POST /v1/adopt": status,
      "POST /v1/checkpoint": manifest,
      "DELETE /v1/checkpoints/cp%201": { ok: true },
      "POST /v1/export": {
        branch: "alpine/hello",
        commit: SHA,
        base_commit: SHA,
        tree_hash: SHA,
        files_changed: 1,
        insertions: 2,
        deletions: 0,
        pushed: false,
        remote: null,
      },
    };
    const { seen, c } = client((req) =>
      json(answers[`${req.method} ${new URL(req.url).pathname}${new URL(req.url).search}`]),
    );
    expect(await c.task({ prompt: "do it" })).toEqual({ session_id: "s1", accepted: true });
    expect((await c.diff()).patch).toBe("");
    expect((await c.diff({ stat: true })).files).toHaveLength(1);
    expect((await c.login()).code).toBe("c");
    await expect(c.shutdown()).resolves.toBeUndefined();
    expect((await c.adopt({ sandbox_id: "sb_1", name: "hello" })).name).toBe("hello");
    expect(await c.checkpoint({ checkpoint_id: "cp_1", created_at: "2026-01-01T00:00:00.000Z" })).toEqual(
      manifest,
    );
    await expect(c.deleteCheckpoint("cp 1")).resolves.toBeUndefined();
    const exported = await c.export({
      branch: "alpine/hello",
      message: "m",
      author: { name: "a", email: "a@b" },
      push: false,
    });
    expect(exported.files_changed).toBe(1);
    expect(seen.map((r) => `${r.method} ${new URL(r.url).pathname}`)).toEqual([
      "POST /v1/task",
      "GET /v1/diff",
      "GET /v1/diff",
      "POST /v1/login",
      "POST /v1/shutdown",
      "POST /v1/adopt",
      "POST /v1/checkpoint",
      "DELETE /v1/checkpoints/cp%201",
      "POST /v1/export",
    ]);
    expect(JSON.parse(seen[0]!.body!)).toEqual({ prompt: "do it" });
    expect(seen[0]!.headers["content-type"]).toBe("application/json");
    expect(seen[3]!.body).toBe("{}");
  });

  it("gets an artifact as a stream, escaping the path", async () => {
    const { seen, c } = client(() => new Response("bundle-bytes"));
    const stream = await c.checkpointArtifact("cp/1", "workspace.bundle");
    expect(await new Response(stream).text()).toBe("bundle-bytes");
    expect(seen[0]!.url).toBe("http://sbx.test:9000/v1/checkpoints/cp%2F1/artifacts/workspace.bundle");
  });

  it("refuses an artifact answer without a body, and reports an artifact error", async () => {
    const empty = client(() => new Response(null, { status: 200 }));
    expect((await rejection(empty.c.checkpointArtifact("cp", "workspace.bundle"))).reason).toBe(
      "sandbox_unavailable",
    );
    const missing = client(() => json(new AlpineError("checkpoint_missing", "gone").toJSON(), 404));
    const err = await rejection(missing.c.checkpointArtifact("cp", "workspace.bundle"));
    expect(err.reason).toBe("checkpoint_missing");
    expect(err.message).toBe("gone");
  });

  it("streams a restore artifact up with half duplex and returns what sandboxd staged", async () => {
    const { seen, c } = client(() => json({ name: "workspace.bundle", sha256: SHA256, bytes: 5 }));
    const body = new Response("hello").body!;
    expect(await c.stageRestoreArtifact("workspace.bundle", body)).toEqual({
      name: "workspace.bundle",
      sha256: SHA256,
      bytes: 5,
    });
    expect(seen[0]).toMatchObject({
      method: "PUT",
      url: "http://sbx.test:9000/v1/restore/artifacts/workspace.bundle",
      body: "hello",
      duplex: "half",
    });
    expect(seen[0]!.headers["content-type"]).toBe("application/octet-stream");
    await expect(c.putRestoreArtifact("workspace.bundle", new Response("x").body!)).resolves.toBeUndefined();
  });
});

describe("SandboxdClient errors", () => {
  it("rebuilds sandboxd's own error object", async () => {
    const { c } = client(() =>
      json(new AlpineError("agent_busy", "busy", { session_id: "s" }).toJSON(), 409),
    );
    const err = await rejection(c.task({ prompt: "x" }));
    expect(err.reason).toBe("agent_busy");
    expect(err.details).toEqual({ session_id: "s" });
  });

  it.each([
    [401, "unauthorized"],
    [502, "sandbox_unavailable"],
    [503, "sandbox_unavailable"],
    [504, "sandbox_unavailable"],
    [500, "internal_error"],
    [404, "internal_error"],
  ])("maps a non-JSON HTTP %i to %s", async (code, reason) => {
    const { c } = client(() => new Response("<html>oops</html>", { status: code }));
    const err = await rejection(c.status());
    expect(err.reason).toBe(reason);
    expect(err.message).toBe(`sandboxd answered HTTP ${code}`);
    expect(err.details).toEqual({ status: code, body: "<html>oops</html>" });
  });

  it("refuses a body that is not JSON, and JSON of the wrong shape", async () => {
    const bad = client(() => new Response("not json", { status: 200 }));
    const err = await rejection(bad.c.status());
    expect(err.reason).toBe("internal_error");
    expect(err.message).toBe("sandboxd sent invalid JSON for GET /v1/status");
    const wrong = client(() => json({ ok: "yes" }));
    const err2 = await rejection(wrong.c.health());
    expect(err2.message).toBe("sandboxd sent an unexpected response for GET /healthz");
    expect(typeof err2.details.issues).toBe("string");
  });

  it("reports a failed connection as sandbox_unavailable", async () => {
    const { c } = client(() => {
      throw new TypeError("fetch failed");
    });
    const err = await rejection(c.status());
    expect(err.reason).toBe("sandbox_unavailable");
    expect(err.message).toBe("cannot reach sandboxd at http://sbx.test:9000: fetch failed");
    expect(err.details).toEqual({ url: "http://sbx.test:9000", timeout: false });
  });

  it("reports a timeout with the time it waited", async () => {
    const { c } = client(
      () => {
        // What fetch throws when the request's AbortSignal.timeout fires.
        throw new DOMException("The operation was aborted due to timeout", "TimeoutError");
      },
      { timeoutMs: 1500 },
    );
    const err = await rejection(c.status());
    expect(err.message).toBe("sandboxd at http://sbx.test:9000 did not answer within 1.5 s");
    expect(err.details).toEqual({ url: "http://sbx.test:9000", timeout: true, timeout_ms: 1500 });
  });
});

describe("SandboxdClient failures that are not Errors", () => {
  it("describes a thrown non-Error value", async () => {
    const { c } = client(() => {
      throw "refused";
    });
    const err = await rejection(c.status());
    expect(err.message).toBe("cannot reach sandboxd at http://sbx.test:9000: refused");
    expect(err.details.timeout).toBe(false);
  });

  it("counts an aborted stream read as a timeout", async () => {
    const body = new ReadableStream<Uint8Array>({
      pull(ctl) {
        ctl.error(new DOMException("The operation was aborted", "AbortError"));
      },
    });
    const { c } = client(() => new Response(body));
    const err = await rejection(c.init({ repo: "r" }));
    expect(err.reason).toBe("sandbox_unavailable");
    expect(err.message).toBe("sandboxd at http://sbx.test:9000 did not answer within 0 s");
    expect(err.details).toEqual({ url: "http://sbx.test:9000", timeout: true, timeout_ms: null });
  });
});

describe("SandboxdClient init and restore streams", () => {
  it("reports each phase and resolves with the result's status, skipping heartbeats and unknown lines", async () => {
    const { seen, c } = client(() =>
      ndjson([
        { type: "phase", phase: "cloning" },
        { type: "heartbeat" },
        { type: "from_the_future", x: 1 },
        "",
        { type: "phase", phase: "starting_agent" },
        { type: "result", ok: true, status },
      ]),
    );
    const phases: string[] = [];
    expect(await c.init({ repo: "https://example.test/r.git" }, (p) => phases.push(p))).toEqual(status);
    expect(phases).toEqual(["cloning", "starting_agent"]);
    expect(seen[0]!.url).toBe("http://sbx.test:9000/v1/init");
    expect(JSON.parse(seen[0]!.body!)).toEqual({ repo: "https://example.test/r.git" });
  });

  it("works without an onPhase callback (restore)", async () => {
    const { seen, c } = client(() =>
      ndjson([
        { type: "phase", phase: "restoring" },
        { type: "result", ok: true, status },
      ]),
    );
    expect(await c.restore({ manifest, repo: "r", branch: "alpine/hello" })).toEqual(status);
    expect(seen[0]!.url).toBe("http://sbx.test:9000/v1/restore");
  });

  it("throws the error of a failed result", async () => {
    const error = new AlpineError("checkpoint_checksum_mismatch", "bad bundle", {
      artifact: "workspace.bundle",
    });
    const { c } = client(() =>
      ndjson([
        { type: "phase", phase: "restoring" },
        { type: "result", ok: false, error: error.toJSON() },
      ]),
    );
    const err = await rejection(c.restore({ manifest, repo: "r", branch: "b" }));
    expect(err.reason).toBe("checkpoint_checksum_mismatch");
    expect(err.details).toEqual({ artifact: "workspace.bundle" });
  });

  it("fails when the stream ends without a result", async () => {
    const { c } = client(() => ndjson([{ type: "phase", phase: "cloning" }]));
    const err = await rejection(c.init({ repo: "r" }));
    expect(err.reason).toBe("sandbox_unavailable");
    expect(err.message).toBe("sandboxd closed the /v1/init stream without a result");
  });

  it("fails on a malformed line, naming it", async () => {
    const { c } = client(() => ndjson(["{oops", { type: "result", ok: true, status }]));
    const err = await rejection(c.init({ repo: "r" }));
    expect(err.reason).toBe("internal_error");
    expect(err.message).toBe("sandboxd sent a malformed /v1/init line");
    expect(err.details).toEqual({ line: "{oops" });
  });

  it("fails on an HTTP error before the stream, and on an empty body", async () => {
    const refused = client(() => json(new AlpineError("repo_unreachable", "no repo").toJSON(), 400));
    expect((await rejection(refused.c.init({ repo: "r" }))).reason).toBe("repo_unreachable");
    const empty = client(() => new Response(null, { status: 200 }));
    const err = await rejection(empty.c.init({ repo: "r" }));
    expect(err.reason).toBe("sandbox_unavailable");
    expect(err.message).toBe("sandboxd sent an empty /v1/init response");
  });

  it("reports a stream cut mid-way as sandbox_unavailable", async () => {
    const enc = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(ctl) {
        ctl.enqueue(enc.encode('{"type":"phase","phase":"cloning"}\n'));
      },
      pull(ctl) {
        ctl.error(new Error("connection reset"));
      },
    });
    const { c } = client(() => new Response(body));
    const phases: string[] = [];
    const err = await rejection(c.init({ repo: "r" }, (p) => phases.push(p)));
    expect(phases).toEqual(["cloning"]);
    expect(err.reason).toBe("sandbox_unavailable");
    expect(err.message).toBe("cannot reach sandboxd at http://sbx.test:9000: connection reset");
  });
});

describe("SandboxdClient over real HTTP", () => {
  let server: Server;
  let base: string;
  const requests: { method?: string; url?: string; auth?: string; body: string }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        requests.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
        if (req.url === "/v1/status" && req.headers.authorization !== "Bearer secret-token") {
          res.writeHead(401, { "content-type": "application/json" });
          res.end(JSON.stringify(new AlpineError("unauthorized", "bad token").toJSON()));
        } else if (req.url === "/v1/status") {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify(status));
        } else if (req.url === "/v1/init") {
          res.writeHead(200, { "content-type": "application/x-ndjson" });
          res.write(`${JSON.stringify({ type: "phase", phase: "cloning" })}\n`);
          setTimeout(() => res.end(`${JSON.stringify({ type: "result", ok: true, status })}\n`), 10);
        } else if (req.url === "/slow/v1/status") {
          setTimeout(() => res.end("{}"), 300);
        } else if (req.url?.startsWith("/v1/restore/artifacts/")) {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ name: "workspace.bundle", sha256: SHA256, bytes: body.length }));
        } else {
          res.writeHead(404);
          res.end("no route");
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("sends the token and parses the answer", async () => {
    const c = new SandboxdClient({ baseUrl: `${base}/`, token: "secret-token" });
    expect(await c.status()).toEqual(status);
    expect(requests.at(-1)).toMatchObject({ method: "GET", url: "/v1/status", auth: "Bearer secret-token" });
  });

  it("reports a wrong token as unauthorized", async () => {
    const c = new SandboxdClient({ baseUrl: base, token: "wrong" });
    const err = await rejection(c.status());
    expect(err.reason).toBe("unauthorized");
    expect(err.message).toBe("bad token");
  });

  it("reads an init stream sent in pieces", async () => {
    const c = new SandboxdClient({ baseUrl: base, token: "secret-token" });
    const phases: string[] = [];
    expect(await c.init({ repo: "r" }, (p) => phases.push(p))).toEqual(status);
    expect(phases).toEqual(["cloning"]);
  });

  it("streams an artifact body to the server", async () => {
    const c = new SandboxdClient({ baseUrl: base, token: "secret-token" });
    const staged = await c.stageRestoreArtifact("workspace.bundle", new Response("0123456789").body!);
    expect(staged.bytes).toBe(10);
    expect(requests.at(-1)).toMatchObject({ method: "PUT", body: "0123456789" });
  });

  it("times out a slow answer", async () => {
    const c = new SandboxdClient({ baseUrl: `${base}/slow`, token: "secret-token", timeoutMs: 50 });
    const err = await rejection(c.status());
    expect(err.reason).toBe("sandbox_unavailable");
    expect(err.details).toMatchObject({ timeout: true, timeout_ms: 50 });
  });

  it("reports an unknown route's non-JSON 404 as internal_error", async () => {
    const c = new SandboxdClient({ baseUrl: base, token: "secret-token" });
    const err = await rejection(c.diff());
    expect(err.reason).toBe("internal_error");
    expect(err.details).toEqual({ status: 404, body: "no route" });
  });

  it("reports a closed port as sandbox_unavailable", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const c = new SandboxdClient({ baseUrl: `http://127.0.0.1:${port}`, token: "secret-token" });
    const err = await rejection(c.health());
    expect(err.reason).toBe("sandbox_unavailable");
    expect(err.details).toEqual({ url: `http://127.0.0.1:${port}`, timeout: false });
  });
});
