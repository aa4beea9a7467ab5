import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { AlpineError } from "@alpine/core/errors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSandboxd, makeBareRepo, type RunningSandboxd, readLog, startSandboxd } from "./helpers.ts";

// One sandboxd for the API surface that needs no OpenCode: every init here fails before the agent starts.
let sbx: RunningSandboxd;
let repo: string;

beforeAll(async () => {
  repo = makeBareRepo();
  sbx = await startSandboxd();
});
afterAll(async () => {
  await sbx?.kill();
});

describe("start-up", () => {
  it("writes one listening line and answers /healthz without auth", async () => {
    expect(sbx.port).toBeGreaterThan(0);
    expect(sbx.pid).toBe(sbx.child.pid);
    const res = await fetch(`${sbx.baseUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, phase: "booting" });
    expect(await sbx.client.health()).toEqual({ ok: true, phase: "booting" });
  });

  it("never writes the token to its log", async () => {
    await sbx.client.status();
    const log = readLog(sbx.dirs.log);
    expect(log).toContain('"msg":"listening"');
    expect(log).not.toContain(sbx.token);
  });

  it("refuses an invalid config with one error line and exit 1", async () => {
    const entry = await buildSandboxd();
    const child = spawn(process.execPath, [entry], { stdio: ["pipe", "pipe", "pipe"] });
    child.stdin.end(JSON.stringify({ sandbox_id: "x", name: "Bad Name", token: "short" }));
    const line = await new Promise<string>((r) => createInterface({ input: child.stdout }).once("line", r));
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    const msg = JSON.parse(line) as { event: string; error: { reason_code: string } };
    expect(msg.event).toBe("error");
    expect(msg.error.reason_code).toBe("config_invalid");
    expect(code).toBe(1);
  });
});

describe("bearer auth", () => {
  const routes: [string, string][] = [
    ["GET", "/v1/status"],
    ["POST", "/v1/init"],
    ["POST", "/v1/task"],
    ["GET", "/v1/diff"],
    ["GET", "/v1/diff?stat=1"],
    ["POST", "/v1/login"],
    ["POST", "/v1/shutdown"],
    ["GET", "/v1/nope"],
  ];
  for (const [method, path] of routes) {
    it(`401 on ${method} ${path} without or with a wrong token`, async () => {
      for (const authorization of [
        undefined,
        "Bearer wrong-token-123456789",
        `Basic ${sbx.token}`,
        sbx.token,
      ]) {
        const res = await fetch(sbx.baseUrl + path, {
          method,
          headers: authorization ? { authorization, "content-type": "application/json" } : {},
          body: method === "POST" ? "{}" : undefined,
        });
        expect(res.status).toBe(401);
        const body = (await res.json()) as Record<string, unknown>;
        expect(body).toMatchObject({ reason_code: "unauthorized", exit_code: 1, retryable: false });
        expect(Object.keys(body).sort()).toEqual([
          "details",
          "error",
          "exit_code",
          "reason_code",
          "retryable",
        ]);
      }
    });
  }

  it("the client turns a wrong token into an unauthorized AlpineError", async () => {
    const { SandboxdClient } = await import("@alpine/core/sandboxd-client");
    const bad = new SandboxdClient({ baseUrl: sbx.baseUrl, token: "x".repeat(32) });
    await expect(bad.status()).rejects.toMatchObject({ reason: "unauthorized" });
  });

  it("an unreachable sandboxd is sandbox_unavailable", async () => {
    const { SandboxdClient } = await import("@alpine/core/sandboxd-client");
    const gone = new SandboxdClient({
      baseUrl: "http://127.0.0.1:1",
      token: "x".repeat(32),
      timeoutMs: 2000,
    });
    const err = await gone.status().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlpineError);
    expect((err as AlpineError).reason).toBe("sandbox_unavailable");
  });
});

describe("init input checks (before git runs)", () => {
  const marker = join(tmpdir(), `alpine-injected-${process.pid}`);
  const cases: [string, Record<string, unknown>, string][] = [
    ["repo option", { repo: `--upload-pack=touch ${marker}`, branch: "alpine/x" }, "repo_resolution_failed"],
    [
      "ext:: transport",
      { repo: `ext::sh -c touch% ${marker}`, branch: "alpine/x" },
      "repo_resolution_failed",
    ],
    ["fd:: transport", { repo: "fd::17", branch: "alpine/x" }, "repo_resolution_failed"],
    ["control chars", { repo: "https://example.com/a\nb.git", branch: "alpine/x" }, "repo_resolution_failed"],
    ["relative path", { repo: "some/relative/path", branch: "alpine/x" }, "repo_resolution_failed"],
    [
      "ref option",
      { repo: "/nonexistent-but-checked-first", ref: "--output=/tmp/x", branch: "alpine/x" },
      "repo_resolution_failed",
    ],
    ["branch option", { repo: "REPO", branch: "--force" }, "branch_invalid"],
    ["branch with ..", { repo: "REPO", branch: "alpine/../x" }, "branch_invalid"],
    ["branch @{-1}", { repo: "REPO", branch: "@{-1}" }, "branch_invalid"],
    [
      "ref with control chars",
      { repo: "REPO", ref: "main\u0007", branch: "alpine/x" },
      "repo_resolution_failed",
    ],
  ];
  for (const [what, body, reason] of cases) {
    it(`refuses ${what} with ${reason}`, async () => {
      const b = { ...body, repo: body.repo === "REPO" ? repo : body.repo };
      const res = await fetch(`${sbx.baseUrl}/v1/init`, {
        method: "POST",
        headers: { authorization: `Bearer ${sbx.token}`, "content-type": "application/json" },
        body: JSON.stringify(b),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { reason_code: string }).reason_code).toBe(reason);
      expect(existsSync(marker)).toBe(false);
      // Nothing was cloned.
      expect(readdirSync(sbx.dirs.workspace)).toEqual([]);
      expect((await sbx.client.health()).phase).toBe("booting");
    });
  }

  it("the client throws the same error", async () => {
    await expect(sbx.client.init({ repo: "-x", branch: "alpine/x" })).rejects.toMatchObject({
      reason: "repo_resolution_failed",
    });
  });

  it("rejects a malformed body with usage_invalid", async () => {
    const res = await fetch(`${sbx.baseUrl}/v1/init`, {
      method: "POST",
      headers: { authorization: `Bearer ${sbx.token}`, "content-type": "application/json" },
      body: JSON.stringify({ ref: 3 }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { reason_code: string }).reason_code).toBe("usage_invalid");
  });
});

describe("init failures", () => {
  it("ref_not_found streams a failed result and leaves the phase failed", async () => {
    const phases: string[] = [];
    const err = await sbx.client
      .init({ repo, ref: "no-such-branch", branch: "alpine/x" }, (p) => phases.push(p))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlpineError);
    expect((err as AlpineError).reason).toBe("ref_not_found");
    expect(phases).toEqual(["cloning"]);
    const status = await sbx.client.status();
    expect(status.phase).toBe("failed");
    expect(status.error?.reason_code).toBe("ref_not_found");
    expect(status.workspace).toBeNull();
  });

  it("an unreachable remote is repo_unreachable (retryable)", async () => {
    const err = await sbx.client
      .init({ repo: "http://127.0.0.1:1/nothing.git", branch: "alpine/x" })
      .catch((e: unknown) => e);
    expect((err as AlpineError).reason).toBe("repo_unreachable");
    expect((err as AlpineError).retryable).toBe(true);
  });

  it("task and diff need a ready sandbox", async () => {
    await expect(sbx.client.task({ prompt: "hi" })).rejects.toMatchObject({ reason: "sandbox_not_running" });
    await expect(sbx.client.diff({ stat: true })).rejects.toMatchObject({ reason: "sandbox_not_running" });
  });
});
