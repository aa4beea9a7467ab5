import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StubModel, startStubModel, stubOpencodeConfig } from "../../../test/e2e/fixtures/stub-model.ts";
import { makeBareRepo, type RunningSandboxd, startSandboxd, waitFor, waitTask } from "./helpers.ts";

/*
 * Agent states beyond busy/idle, without isolation: a permission the config
 * says to ask for (needs_input until answered through the UI proxy),
 * a model error (task failed, agent error), explicit sessions.
 */

const API_KEY = `sk-stub-${randomBytes(8).toString("hex")}`;
let stub: StubModel;
let sbx: RunningSandboxd;
let cookie = "";
/** In front of the stub model: passes requests through, or fails them with `failWith`. */
let gate: Server;
let failWith: { status: number; body: unknown } | null = null;

function startGate(target: string): Promise<string> {
  const t = new URL(target);
  gate = createServer((req, res) => {
    if (failWith) {
      req.resume();
      res.writeHead(failWith.status, { "content-type": "application/json" });
      res.end(JSON.stringify(failWith.body));
      return;
    }
    const up = request(
      { host: t.hostname, port: t.port, path: req.url, method: req.method, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode!, upRes.headers);
        upRes.pipe(res);
      },
    );
    req.pipe(up);
  });
  return new Promise((r) =>
    gate.listen(0, "127.0.0.1", () => r(`http://127.0.0.1:${(gate.address() as AddressInfo).port}/v1`)),
  );
}

async function ui(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(sbx.baseUrl + path, {
    ...init,
    headers: { cookie, "content-type": "application/json", ...(init.headers ?? {}) },
  });
}

beforeAll(async () => {
  stub = await startStubModel({ apiKey: API_KEY });
  const { model, config } = stubOpencodeConfig(await startGate(stub.baseURL));
  sbx = await startSandboxd({
    isolation: "none",
    // An explicit permission key wins over the headless defaults.
    opencode: {
      model,
      config: { ...config, permission: { edit: "ask" } },
      auth: { stub: { type: "api", key: API_KEY } },
    },
  });
  await sbx.client.init({ repo: makeBareRepo(), branch: "alpine/demo" });
  const { code } = await sbx.client.login();
  const res = await fetch(`${sbx.baseUrl}/auth/${code}`, { redirect: "manual" });
  cookie = res.headers.get("set-cookie")!.split(";")[0]!;
});

afterAll(async () => {
  await sbx?.kill();
  gate?.closeAllConnections();
  gate?.close();
  await stub?.close();
});

describe("agent states", () => {
  it("needs_input until the permission is answered, then the task completes", async () => {
    const { session_id } = await sbx.client.task({ prompt: "WRITE ASKED.md needs a yes" });
    const waiting = await waitFor(async () => {
      const s = await sbx.client.status();
      return s.agent.state === "needs_input" ? s : undefined;
    });
    expect(waiting.task!.state).toBe("running");
    // What it asks, in one line (the path OpenCode asks to edit).
    expect(waiting.agent.reason).toMatch(/^asks permission: edit ".*ASKED\.md"$/);
    const pending = (await (await ui("/permission")).json()) as { id: string; sessionID: string }[];
    const mine = pending.find((p) => p.sessionID === session_id)!;
    expect(mine).toBeTruthy();
    const reply = await ui(`/permission/${mine.id}/reply`, {
      method: "POST",
      body: JSON.stringify({ reply: "once" }),
    });
    expect(reply.ok).toBe(true);
    const done = await waitTask(sbx.client);
    expect(done.task!.state).toBe("completed");
    expect(done.agent.state).toBe("idle");
    expect(done.agent.reason).toBeNull();
    expect(readFileSync(join(sbx.dirs.workspace, "ASKED.md"), "utf8")).toBe("needs a yes");
  });

  it("tasks continue the task session unless given another; a given one is used", async () => {
    const first = (await sbx.client.status()).task!.session_id;
    const again = await sbx.client.task({ prompt: "just say hi" });
    expect(again.session_id).toBe(first);
    await waitTask(sbx.client);
    const created = (await (await ui("/session", { method: "POST", body: "{}" })).json()) as { id: string };
    const explicit = await sbx.client.task({ prompt: "hi there", session_id: created.id });
    expect(explicit.session_id).toBe(created.id);
    const s = await waitTask(sbx.client);
    expect(s.task).toMatchObject({ session_id: created.id, state: "completed" });
    await expect(sbx.client.task({ prompt: "x", session_id: "ses_does_not_exist" })).rejects.toMatchObject({
      reason: "usage_invalid",
    });
    // A refused prompt leaves the last accepted task in place.
    expect((await sbx.client.status()).task).toMatchObject({ session_id: created.id, state: "completed" });
  });

  it("a model error fails the task and puts the agent in error", async () => {
    failWith = {
      status: 401,
      body: {
        error: {
          message: "Incorrect API key provided.",
          type: "invalid_request_error",
          code: "invalid_api_key",
        },
      },
    };
    try {
      await sbx.client.task({ prompt: "say something" });
      const s = await waitTask(sbx.client);
      expect(s.task!.state).toBe("failed");
      expect(s.task!.error).toMatchObject({ reason_code: "task_failed", exit_code: 1 });
      expect(s.task!.error!.error).toContain("Incorrect API key");
      // OpenCode sends session.error just before the session's idle; then the agent shows error.
      const errored = await waitFor(async () => {
        const st = await sbx.client.status();
        return st.agent.state === "error" ? st : undefined;
      }, 10_000);
      // The reason a model without credentials gives (a launch before `auth sync`): status and message.
      expect(errored.agent.reason).toBe("model error (HTTP 401): Incorrect API key provided.");
    } finally {
      failWith = null;
    }
    // The next task clears the error.
    await sbx.client.task({ prompt: "say something else" });
    const ok = await waitTask(sbx.client);
    expect(ok.task!.state).toBe("completed");
    expect(ok.agent.state).toBe("idle");
  });

  it("retry while the model is overloaded, then completes", async () => {
    failWith = { status: 503, body: { error: { message: "overloaded", type: "server_error" } } };
    try {
      await sbx.client.task({ prompt: "try hard" });
      const retrying = await waitFor(async () => {
        const s = await sbx.client.status();
        return s.agent.state === "retry" ? s : undefined;
      }, 30_000);
      expect(retrying.task!.state).toBe("running");
      expect(retrying.agent.reason).toMatch(
        /^retrying after: .*overloaded.* \(attempt \d+, next at \d\d:\d\d:\d\dZ\)$/,
      );
    } finally {
      failWith = null;
    }
    const done = await waitTask(sbx.client, 90_000);
    expect(done.task!.state).toBe("completed");
    expect(done.agent.state).toBe("idle");
  });

  it("a turn that reaches the task budget is stopped: agent budget with what it spent, task interrupted, work kept", async () => {
    await sbx.client.task({ prompt: "USAGE 300 100 LOOP 10", budget: { task: { tokens: 1000 } } });
    const stopped = await waitFor(async () => {
      const st = await sbx.client.status();
      return st.agent.state === "budget" ? st : undefined;
    }, 60_000);
    expect(stopped.agent.reason).toMatch(/^task budget reached: \d+ of 1000 tokens spent/);
    const ended = await waitTask(sbx.client);
    expect(ended.task!.state).toBe("interrupted");
    expect(ended.task!.error).toMatchObject({ reason_code: "budget_reached" });
    expect(ended.agent.state).toBe("budget");
    // Stopped at the third step (3 × 400 tokens), far from the ten asked for; the steps done stay.
    expect(ended.task!.usage!.input + ended.task!.usage!.output).toBeGreaterThanOrEqual(1000);
    expect(ended.task!.usage!.input + ended.task!.usage!.output).toBeLessThan(2400);
    const steps = readFileSync(join(sbx.dirs.workspace, "LOOP.log"), "utf8").trim().split("\n");
    expect(steps.length).toBeGreaterThanOrEqual(2);
    expect(steps.length).toBeLessThan(6);
    expect(ended.agent.usage!.input).toBeGreaterThanOrEqual(ended.task!.usage!.input);
    // A task budget is per task: the next prompt goes on in the same session.
    await sbx.client.task({ prompt: "USAGE 10 5 just say hi", budget: {} });
    const next = await waitTask(sbx.client);
    expect(next.task!.state).toBe("completed");
    expect(next.agent).toMatchObject({ state: "idle", reason: null });
  });

  it("a restarted sandboxd reuses the workspace (no clone) and keeps the agent's work", async () => {
    const before = await sbx.client.status();
    await sbx.client.shutdown();
    expect(await sbx.exited).toBe(0);
    const { model, config } = stubOpencodeConfig(stub.baseURL);
    sbx = await startSandboxd(
      { isolation: "none", opencode: { model, config, auth: { stub: { type: "api", key: API_KEY } } } },
      sbx.dirs,
    );
    const phases: string[] = [];
    const after = await sbx.client.init({ repo: before.workspace!.repo, branch: "alpine/demo" }, (p) =>
      phases.push(p),
    );
    expect(after.phase).toBe("ready");
    expect(after.workspace).toMatchObject({
      base_commit: before.workspace!.base_commit,
      branch: "alpine/demo",
      tree_hash: before.workspace!.tree_hash,
    });
    expect(readFileSync(join(sbx.dirs.workspace, "ASKED.md"), "utf8")).toBe("needs a yes");
    const log = readFileSync(sbx.dirs.log, "utf8");
    expect(log).toContain("reusing the existing workspace");
    expect(log.split("\n").filter((l) => l.includes('"clone"'))).toHaveLength(1); // the first sandboxd's only
    // OpenCode's sessions live in the sandbox home and survive too.
    const { code } = await sbx.client.login();
    const res = await fetch(`${sbx.baseUrl}/auth/${code}`, { redirect: "manual" });
    cookie = res.headers.get("set-cookie")!.split(";")[0]!;
    const sessions = (await (await ui("/session")).json()) as { id: string }[];
    expect(sessions.map((x) => x.id)).toContain(before.task!.session_id);
  });
});
