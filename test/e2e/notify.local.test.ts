import { createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "./env.ts";

/**
 * Notifications from a local sandbox's sandboxd to webhook receivers on 127.0.0.1: a signed JSON
 * webhook (HMAC-SHA256 checked here with the shared secret), a Slack-format one, retries after a
 * 500, a delivery left pending by a killed sandboxd sent by the next one (at least once), and no
 * duplicate after a restart or a teardown and resume. Attempts show in `alpine logs`; the secret
 * shows nowhere.
 */
const SECRET = "whsec-E2E-0123456789abcdef";
const NAME = "notified";
let e: E2EEnv;
let id = "";
let receiver: Server;
let port = 0;
const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 120_000 });

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  answered: number;
}
const received: Received[] = [];
/** What the JSON hook answers next; the Slack hook answers 500 to its first request, then 200. */
let jsonAnswer = 500;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = req.url ?? "";
      const answered = path === "/json" ? jsonAnswer : received.some((r) => r.path === "/slack") ? 200 : 500;
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), answered });
      res.writeHead(answered).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  port = (receiver.address() as AddressInfo).port;
  e = await makeEnv({
    yaml: [
      "notify:",
      "  on: [done, error]",
      "  webhooks:",
      `    - url: http://127.0.0.1:${port}/json`,
      "      secret_env: E2E_HOOK_SECRET",
      `    - url: http://127.0.0.1:${port}/slack`,
      "      format: slack",
    ],
  });
  e.env.E2E_HOOK_SECRET = SECRET;
}, 60_000);

afterAll(async () => {
  await alpine("teardown", NAME, "--force", "--json").catch(() => {});
  await e?.close();
  await new Promise((resolve) => receiver?.close(resolve));
});

const json = () => received.filter((r) => r.path === "/json");
const slack = () => received.filter((r) => r.path === "/slack");

function verify(r: Received): Record<string, unknown> {
  const ts = String(r.headers["x-alpine-timestamp"]);
  const expected = `sha256=${createHmac("sha256", SECRET).update(`${ts}.${r.body}`).digest("hex")}`;
  expect(r.headers["x-alpine-signature"]).toBe(expected);
  expect(Math.abs(Date.now() / 1000 - Number(ts))).toBeLessThan(600);
  const body = JSON.parse(r.body) as Record<string, unknown>;
  expect(r.headers["x-alpine-delivery"]).toBe(body.delivery_id);
  return body;
}

describe("notifications (local)", () => {
  it("a finished task is posted, signed, to the JSON hook and in Slack's format; a 500 is retried", async () => {
    const r = await alpine("launch", NAME, "--repo", e.repoUrl, "--task", "WRITE A.md first", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    id = r.json().id;
    expect((await alpine("wait", NAME)).code).toBe(0);
    // Slack: 500 first, then delivered on the retry 2 s later.
    await waitFor("the Slack hook's retry", async () => slack().length >= 2, { timeoutMs: 30_000 });
    expect(slack().map((s) => s.answered)).toEqual([500, 200]);
    expect(JSON.parse(slack()[1]!.body)).toEqual({
      text: `alpine: sandbox \`${NAME}\` finished: the agent finished its task: WRITE A.md first`,
    });
    // JSON: answered 500 so far; every attempt carries the same delivery id and a valid signature.
    await waitFor("the JSON hook's first attempts", async () => json().length >= 2, { timeoutMs: 30_000 });
    const bodies = json().map(verify);
    expect(new Set(bodies.map((b) => b.delivery_id)).size).toBe(1);
    expect(bodies[0]).toMatchObject({
      event: "done",
      sandbox: { id, name: NAME },
      task: { prompt_summary: "WRITE A.md first" },
    });
    // A body changed in transit no longer matches its signature.
    const forged = json()[0]!;
    const tampered = forged.body.replace("done", "error");
    expect(
      createHmac("sha256", SECRET)
        .update(`${forged.headers["x-alpine-timestamp"]}.${tampered}`)
        .digest("hex"),
    ).not.toBe(String(forged.headers["x-alpine-signature"]).slice("sha256=".length));
  });

  it("a delivery pending when sandboxd is killed is sent by the next sandboxd, once", async () => {
    const firstId = verify(json()[0]!).delivery_id;
    const pid = Number(readFileSync(join(e.alpineHome, "sandboxes", id, "sandboxd.pid"), "utf8"));
    process.kill(pid, "SIGKILL");
    jsonAnswer = 200;
    const before = json().length;
    const up = await alpine("launch", NAME, "--json");
    expect(up.code, up.stdout + up.stderr).toBe(0);
    await waitFor("the pending delivery", async () => json().some((r) => r.answered === 200), {
      timeoutMs: 30_000,
    });
    const ok = json().filter((r) => r.answered === 200);
    expect(ok).toHaveLength(1);
    expect(verify(ok[0]!).delivery_id).toBe(firstId);
    expect(json().length).toBeGreaterThan(before);
    // The ledger, outside the runtime dir, says delivered.
    const ledgerFile = join(e.alpineHome, "notify", `${id}.json`);
    expect(readFileSync(ledgerFile, "utf8")).toContain('"webhook:0":"delivered"');
  });

  it("attempts are in `alpine logs`; the secret is in no log, no JSON and no argv", async () => {
    const logs = await alpine("logs", NAME, "--json");
    expect(logs.code).toBe(0);
    const text = logs.stdout;
    expect(text).toContain("notify: attempt failed");
    expect(text).toContain("notify: delivered");
    expect(text).not.toContain(SECRET);
    const status = await alpine("status", NAME, "--json");
    expect(status.stdout).not.toContain(SECRET);
    const sandboxDir = join(e.alpineHome, "sandboxes", id);
    const pid = Number(readFileSync(join(sandboxDir, "sandboxd.pid"), "utf8"));
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain(SECRET);
    expect(readFileSync(`/proc/${pid}/environ`, "utf8")).not.toContain(SECRET);
    const log = readFileSync(join(sandboxDir, "logs", "sandboxd.log"), "utf8");
    expect(log).not.toContain(SECRET);
  });

  it("after a teardown and resume nothing is sent again; a new task is a new delivery", async () => {
    const delivered = json().filter((r) => r.answered === 200).length;
    // Without --force: a checkpoint first, so the resume brings back the workspace and the session.
    const down = await alpine("teardown", NAME, "--json");
    expect(down.code, down.stdout + down.stderr).toBe(0);
    expect(existsSync(join(e.alpineHome, "notify", `${id}.json`))).toBe(true);
    const up = await alpine("launch", NAME, "--json");
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const t = await alpine("task", NAME, "--wait", "WRITE B.md second");
    expect(t.code, t.stdout + t.stderr).toBe(0);
    await waitFor(
      "the second task's delivery",
      async () => json().filter((r) => r.answered === 200).length > delivered,
      {
        timeoutMs: 30_000,
      },
    );
    // Let a would-be duplicate arrive.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const ok = json()
      .filter((r) => r.answered === 200)
      .map(verify);
    expect(ok).toHaveLength(delivered + 1);
    expect(new Set(ok.map((b) => b.delivery_id)).size).toBe(ok.length);
    expect(ok.at(-1)).toMatchObject({ event: "done", task: { prompt_summary: "WRITE B.md second" } });
  });
});
