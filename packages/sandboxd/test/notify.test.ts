import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NotifyTask } from "@alpine/core/notify";
import type { AgentState } from "@alpine/core/schemas";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Logger } from "../src/log.ts";
import { type AgentSource, Notifier } from "../src/notify.ts";

/**
 * sandboxd's Notifier against a receiver on 127.0.0.1, with an agent whose state the test sets (the
 * e2e test test/e2e/notify.local.test.ts drives a real one): signed delivery, a retry after a 500,
 * one delivery per (task, event) across looks and across a new Notifier on the same ledger (a
 * restarted sandboxd), and a delivery left pending sent by the next Notifier.
 */
const SECRET = "unit-secret-0123456789";
let server: Server;
let url = "";
const got: { headers: IncomingHttpHeaders; body: string; status: number }[] = [];
let answers: number[] = [];
let dir = "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "alpine-notify-"));
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const status = answers.shift() ?? 200;
      got.push({ headers: req.headers, body, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

class FakeAgent implements AgentSource {
  state: AgentState = "busy";
  reason: string | null = null;
  task: NotifyTask | null = {
    session_id: "ses_1",
    prompt_summary: "WRITE A.md a",
    state: "running",
    started_at: "2026-01-01T00:00:00.000Z",
  };
  taskStatus() {
    return this.task;
  }
}

const until = async (what: string, fn: () => boolean, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe("Notifier", () => {
  it("sends one signed notification per task and event, retrying a 500; a restart sends nothing again", async () => {
    const ledger = join(dir, "a.json");
    const log = new Logger(join(dir, "a.log"));
    const agent = new FakeAgent();
    const config = {
      on: ["done", "input", "error", "budget"] as const,
      webhooks: [{ url, format: "json" as const, secret: SECRET }],
      desktop: false,
    };
    const n = new Notifier(
      { ...config, on: [...config.on] },
      { id: "sbx_1", name: "demo" },
      agent,
      log,
      ledger,
    );
    await n.look();
    expect(got).toHaveLength(0); // busy: nothing to say
    answers = [500];
    agent.state = "idle";
    agent.task = { ...agent.task!, state: "completed" };
    await n.look();
    await n.look(); // a second look at the same state adds nothing
    await until("the retry", () => got.length >= 2);
    expect(got.map((g) => g.status)).toEqual([500, 200]);
    for (const g of got) {
      const ts = String(g.headers["x-alpine-timestamp"]);
      expect(g.headers["x-alpine-signature"]).toBe(
        `sha256=${createHmac("sha256", SECRET).update(`${ts}.${g.body}`).digest("hex")}`,
      );
    }
    expect(got[0]!.headers["x-alpine-delivery"]).toBe(got[1]!.headers["x-alpine-delivery"]);
    expect(JSON.parse(got[1]!.body)).toMatchObject({ event: "done", sandbox: { id: "sbx_1", name: "demo" } });
    await until("the ledger", () => readFileSync(ledger, "utf8").includes('"delivered"'));
    n.close();

    // A restarted sandboxd (a new Notifier on the same ledger) sees the same state: no second delivery.
    const again = new Notifier(
      { ...config, on: [...config.on] },
      { id: "sbx_1", name: "demo" },
      agent,
      log,
      ledger,
    );
    again.start();
    await again.look();
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toHaveLength(2);
    // The agent's reason, when it gives one, is the notification's.
    agent.state = "needs_input";
    agent.reason = "allow bash: rm -rf build?";
    await again.look();
    await until("the input notification", () => got.length >= 3);
    expect(JSON.parse(got[2]!.body)).toMatchObject({ event: "input", reason: "allow bash: rm -rf build?" });
    again.close();
    const text = readFileSync(join(dir, "a.log"), "utf8");
    expect(text).toContain("notify: attempt failed");
    expect(text).toContain("notify: delivered");
    expect(text).not.toContain(SECRET);
  });

  it("a delivery still pending when sandboxd stops is sent by the next one", async () => {
    const ledger = join(dir, "b.json");
    const log = new Logger(join(dir, "b.log"));
    const agent = new FakeAgent();
    agent.state = "error";
    agent.task = { ...agent.task!, session_id: "ses_b", state: "failed" };
    const config = {
      on: ["error" as const],
      webhooks: [{ url, format: "json" as const, secret: SECRET }],
      desktop: false,
    };
    const before = got.length;
    answers = [503];
    const first = new Notifier(config, { id: "sbx_2", name: "b" }, agent, log, ledger);
    await first.look();
    await until("the first attempt", () => got.length > before);
    first.close(); // stops before its retry: the delivery stays pending
    expect(readFileSync(ledger, "utf8")).toContain('"pending"');
    // The agent moved on (a new turn): only the ledger knows the error is still to be sent.
    agent.state = "busy";
    agent.task = { ...agent.task!, state: "running", started_at: "2026-01-01T00:05:00.000Z" };
    const next = new Notifier(config, { id: "sbx_2", name: "b" }, agent, log, ledger);
    next.start();
    await until("the resend", () => got.length >= before + 2);
    expect(got[before + 1]!.status).toBe(200);
    expect(got[before + 1]!.headers["x-alpine-delivery"]).toBe(got[before]!.headers["x-alpine-delivery"]);
    expect(JSON.parse(got[before + 1]!.body)).toMatchObject({ event: "error" });
    await until("the ledger", () => readFileSync(ledger, "utf8").includes('"delivered"'));
    // The stopped notifier's retry (due 2 s after its first attempt) never goes out.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(got).toHaveLength(before + 2);
    next.close();
  });
});
