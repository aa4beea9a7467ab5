import { createHmac } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "../env.ts";
import {
  type ReceivedWebhook,
  startWebhookReceiver,
  type WebhookReceiver,
} from "../fixtures/webhook-receiver.ts";
import { providerUnderTest } from "../providers.ts";

/**
 * Notifications (issue 17) from whatever watches the agent on this provider — sandboxd in the
 * container (docker), the sandbox's Durable Object (cloudflare, through `alpine cloud dev`) — to
 * receivers on 127.0.0.1: a signed JSON webhook whose first attempt gets a 500 (retried, same
 * delivery id, valid HMAC), a Slack-format one; the attempts in `alpine logs`; the secret in no
 * log or JSON; a new task is a new delivery and nothing is sent twice. One sandbox for all of it.
 * (notify.local.test.ts covers the local provider, with its sandboxd killed mid-delivery.)
 */
export function notifySuite(kind: "docker" | "cloudflare"): void {
  const p = providerUnderTest(kind);
  const SECRET = `whsec-${kind.toUpperCase()}-0123456789abcdef`;
  const NAME = "notified";
  const JSON_PATH = `/fail/1/${kind}/json`;
  const SLACK_PATH = `/${kind}/slack`;
  let e: E2EEnv;
  let hooks: WebhookReceiver;
  const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 180_000 });
  const json = () => hooks.received.filter((r) => r.path === JSON_PATH);
  const slack = () => hooks.received.filter((r) => r.path === SLACK_PATH);

  function verify(r: ReceivedWebhook): Record<string, unknown> {
    const ts = String(r.headers["x-alpine-timestamp"]);
    expect(r.headers["x-alpine-signature"]).toBe(
      `sha256=${createHmac("sha256", SECRET).update(`${ts}.${r.body}`).digest("hex")}`,
    );
    const body = JSON.parse(r.body) as Record<string, unknown>;
    expect(r.headers["x-alpine-delivery"]).toBe(body.delivery_id);
    return body;
  }

  beforeAll(async () => {
    if (p.skipReason) return;
    hooks = await startWebhookReceiver();
    e = await makeEnv({
      yaml: [
        ...p.yaml,
        "notify:",
        "  on: [done, error]",
        "  webhooks:",
        `    - url: ${hooks.url}${JSON_PATH}`,
        "      secret_env: E2E_HOOK_SECRET",
        `    - url: ${hooks.url}${SLACK_PATH}`,
        "      format: slack",
      ],
    });
    Object.assign(e.env, p.env, { E2E_HOOK_SECRET: SECRET });
    await p.start?.(e);
  }, 180_000);

  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail" && p.diagnostics) console.error(p.diagnostics());
  });

  afterAll(async () => {
    if (!e) return;
    await alpine("teardown", NAME, "--force", "--json").catch(() => {});
    await p.stop?.();
    await e.close();
    await hooks.close();
  });

  describe.skipIf(p.skipReason)(`notifications (${kind})`, () => {
    it("a finished task: signed JSON (a 500 retried) and Slack; attempts in alpine logs, the secret nowhere", async () => {
      const r = await alpine("launch", NAME, "--repo", e.repoUrl, "--task", "WRITE A.md first", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const id = r.json().id;
      expect((await alpine("wait", NAME)).code).toBe(0);
      await waitFor("the JSON hook's retry", async () => json().length >= 2, { timeoutMs: 60_000 });
      await waitFor("the Slack hook", async () => slack().length >= 1, { timeoutMs: 30_000 });
      expect(json().map((x) => x.answered)).toEqual([500, 200]);
      const [first, second] = json().map(verify);
      expect(second!.delivery_id).toBe(first!.delivery_id);
      expect(first).toMatchObject({
        event: "done",
        sandbox: { id, name: NAME },
        task: { prompt_summary: "WRITE A.md first" },
      });
      expect(JSON.parse(slack()[0]!.body)).toEqual({
        text: `alpine: sandbox \`${NAME}\` finished: the agent finished its task: WRITE A.md first`,
      });
      const logs = await alpine("logs", NAME, "--json");
      expect(logs.code).toBe(0);
      expect(logs.stdout).toContain("notify: attempt failed");
      expect(logs.stdout).toContain("notify: delivered");
      for (const out of [logs.stdout, (await alpine("status", NAME, "--json")).stdout]) {
        expect(out).not.toContain(SECRET);
        expect(out).not.toContain(SLACK_PATH);
      }
    });

    it("a new task that fails is one new delivery; nothing is sent twice", async () => {
      const t = await alpine("task", NAME, "--wait", "FAIL 400 break please");
      expect(t.code).not.toBe(0);
      await waitFor("the error's delivery", async () => json().length >= 3, { timeoutMs: 60_000 });
      // Let a would-be duplicate arrive (an alarm, the next look of sandboxd).
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect((await alpine("status", NAME, "--json")).code).toBe(0);
      const bodies = json().map(verify);
      expect(bodies).toHaveLength(3);
      expect(bodies[2]).toMatchObject({ event: "error", task: { prompt_summary: "FAIL 400 break please" } });
      expect(bodies[2]!.delivery_id).not.toBe(bodies[0]!.delivery_id);
      expect(slack()).toHaveLength(2);
    });
  });
}
