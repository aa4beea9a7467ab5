import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { api, cliConfig, gitCredentials, waitFor } from "./helpers.ts";

/**
 * Notifications on Cloudflare, sent by the sandbox's Durable Object (notify-object.ts) to a
 * receiver on 127.0.0.1 (global-setup.ts): noticed by the alarm alone, signed with the secret the
 * launch brought, a 500 retried by the object's alarm after its backoff, nothing sent twice when
 * the alarm repeats, a status read reconciles or the sandbox is torn down and resumed; a new task
 * is a new delivery. Attempts are in `alpine logs`; the secret is in no log, output or storage.
 */
const SECRET = "whsec-WORKER-0123456789abcdef";
const NAME = "notify-cf";
const hook = inject("webhookUrl");
const JSON_PATH = `/fail/1/${NAME}/json`;
const SLACK_PATH = `/${NAME}/slack`;

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  answered: number;
}

async function received(path: string): Promise<Received[]> {
  const res = await fetch(`${hook}/_received?path=${encodeURIComponent(path)}`);
  return (await res.json()) as Received[];
}

const config = cliConfig({
  // Neither retention nor suspension ends the sandbox under the test.
  sandbox: { completed_retention_minutes: 600, suspend_after_minutes: 0 },
  notify: {
    on: ["done", "error"],
    webhooks: [
      { url: `${hook}${JSON_PATH}`, secret_env: "HOOK_SECRET" },
      { url: `${hook}${SLACK_PATH}`, format: "slack" },
    ],
  },
});

/** HMAC-SHA256 of `<timestamp>.<body>`, computed here independently of core's signWebhook. */
async function expectedSignature(timestamp: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(SECRET),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${timestamp}.${body}`)),
  );
  return `sha256=${[...mac].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

async function verified(r: Received): Promise<Record<string, unknown>> {
  const ts = r.headers["x-alpine-timestamp"]!;
  expect(r.headers["x-alpine-signature"]).toBe(await expectedSignature(ts, r.body));
  expect(Math.abs(Date.now() / 1000 - Number(ts))).toBeLessThan(600);
  const body = JSON.parse(r.body) as Record<string, unknown>;
  expect(r.headers["x-alpine-delivery"]).toBe(body.delivery_id);
  return body;
}

const stub = () => env.SANDBOX.getByName(NAME);
const notes = async () =>
  ((await api("GET", `/v1/sandboxes/${NAME}/logs`)).body.events as { reason: string }[])
    .map((e) => e.reason)
    .filter((r) => r.startsWith("notify:"));

beforeAll(async () => {
  await api("PUT", "/v1/auth", { entries: { stub: { type: "api", key: inject("modelKey") } } });
});

describe("notifications from the sandbox object", () => {
  let id = "";

  it("the alarm alone notices the finished task: signed JSON (a 500 retried by the alarm after its backoff) and Slack", async () => {
    const r = await api("POST", `/v1/sandboxes/${NAME}/launch`, {
      repo: inject("repoUrl"),
      task: "WRITE N.md noted",
      config,
      credentials: gitCredentials(),
      notify_secrets: { HOOK_SECRET: SECRET },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    id = r.body.id;
    // No status read (a request's reconcile would see it too): only the alarm looks at sandboxd.
    await waitFor(
      "the alarm's first delivery",
      async () => {
        await runDurableObjectAlarm(stub());
        return (await received(SLACK_PATH)).length > 0;
      },
      90_000,
    );
    expect(JSON.parse((await received(SLACK_PATH))[0]!.body)).toEqual({
      text: `alpine: sandbox \`${NAME}\` finished: the agent finished its task: WRITE N.md noted`,
    });
    const first = await received(JSON_PATH);
    expect(first.map((x) => x.answered)).toEqual([500]);
    const body = await verified(first[0]!);
    expect(body).toMatchObject({
      event: "done",
      sandbox: { id, name: NAME },
      task: { prompt_summary: "WRITE N.md noted" },
    });
    // The retry: nobody calls the object now; its own alarm, armed for the backoff, sends it.
    const retried = await waitFor("the retry", async () => {
      const all = await received(JSON_PATH);
      return all.length >= 2 ? all : null;
    });
    expect(retried.map((x) => x.answered)).toEqual([500, 200]);
    expect((await verified(retried[1]!)).delivery_id).toBe(body.delivery_id);
    const t0 = Number(retried[0]!.headers["x-alpine-timestamp"]);
    const t1 = Number(retried[1]!.headers["x-alpine-timestamp"]);
    expect(t1 - t0).toBeGreaterThanOrEqual(1);
    const log = await notes();
    expect(
      log.some((n) => /^notify: attempt failed: webhook 0 .*attempt 1: HTTP 500; next in 2 s/.test(n)),
    ).toBe(true);
    expect(log.some((n) => /^notify: delivered: webhook 0 .*attempt 2: HTTP 200/.test(n))).toBe(true);
    expect(log.some((n) => /^notify: delivered: webhook 1 .*attempt 1: HTTP 200/.test(n))).toBe(true);
  });

  it("nothing is sent twice: the alarm repeats, status reconciles, the sandbox is torn down and resumed", async () => {
    for (let i = 0; i < 3; i++) {
      expect(await runDurableObjectAlarm(stub())).toBe(true);
      expect((await api("GET", `/v1/sandboxes/${NAME}`)).status).toBe(200);
    }
    const down = await api("POST", `/v1/sandboxes/${NAME}/teardown`, { config });
    expect(down.status, JSON.stringify(down.body)).toBe(200);
    const up = await api("POST", `/v1/sandboxes/${NAME}/launch`, {
      config,
      credentials: gitCredentials(),
      notify_secrets: { HOOK_SECRET: SECRET },
    });
    expect(up.body).toMatchObject({ state: "running", resumed: true });
    expect((await api("GET", `/v1/sandboxes/${NAME}`)).body.task.prompt_summary).toBe("WRITE N.md noted");
    await runDurableObjectAlarm(stub());
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await received(JSON_PATH)).length).toBe(2);
    expect((await received(SLACK_PATH)).length).toBe(1);
  });

  it("a new task that fails is a new delivery, seen by a request's reconcile (task --wait)", async () => {
    const before = await received(JSON_PATH);
    const t = await api("POST", `/v1/sandboxes/${NAME}/task`, {
      prompt: "FAIL 400 break please",
      wait: true,
      config,
      notify_secrets: { HOOK_SECRET: SECRET },
    });
    // `task --wait` reports the failure (task_failed); its reconcile has seen the agent's error.
    expect(t.body.reason_code, JSON.stringify(t.body)).toBe("task_failed");
    const after = await waitFor("the error's delivery", async () => {
      const all = await received(JSON_PATH);
      return all.length > before.length ? all : null;
    });
    const body = await verified(after.at(-1)!);
    expect(body).toMatchObject({ event: "error", task: { prompt_summary: "FAIL 400 break please" } });
    expect(body.delivery_id).not.toBe(JSON.parse(before[0]!.body).delivery_id);
    expect(after.length).toBe(before.length + 1);
  });

  it("the secret and the Slack URL are in no log, output or storage in clear", async () => {
    const logs = JSON.stringify((await api("GET", `/v1/sandboxes/${NAME}/logs`)).body);
    const status = JSON.stringify((await api("GET", `/v1/sandboxes/${NAME}`)).body);
    const stored = await runInDurableObject(stub(), (_i, state) => {
      const tables = state.storage.sql
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\'",
        )
        .toArray()
        .map((t) => t.name);
      return tables
        .map((t) => JSON.stringify(state.storage.sql.exec(`SELECT * FROM "${t}"`).toArray()))
        .join("\n");
    });
    // The ledger is among what was read: three rows delivered (done: JSON and Slack; error: JSON).
    expect(stored.match(/"state":"delivered"/g)?.length).toBeGreaterThanOrEqual(3);
    for (const text of [logs, status, stored]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(SLACK_PATH);
    }
    await api("POST", `/v1/sandboxes/${NAME}/teardown`, { force: true });
  });
});
