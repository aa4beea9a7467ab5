import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  ConfigSchema,
  defaultReason,
  deliveryId,
  NOTIFY_RETRY,
  type Notification,
  type NotifyTask,
  notifyEventFor,
  notifyKey,
  notifySecrets,
  retryableStatus,
  sandboxdNotify,
  signWebhook,
  webhookBody,
} from "../src/index.ts";

/** Notifications: what is worth one, the signature, the retry schedule, the bodies, the start config. */

const task = (state: NotifyTask["state"]): NotifyTask => ({
  session_id: "ses_1",
  prompt_summary: "WRITE A.md a",
  state,
  started_at: "2026-01-01T00:00:00.000Z",
});

describe("notifyEventFor", () => {
  const table: [Parameters<typeof notifyEventFor>[0], NotifyTask | null, string | null][] = [
    ["idle", task("completed"), "done"],
    ["idle", null, null],
    ["idle", task("running"), null],
    ["busy", task("running"), null],
    ["retry", task("running"), null],
    ["unknown", task("completed"), null],
    ["needs_input", task("running"), "input"],
    ["budget", task("running"), "budget"],
    ["error", task("failed"), "error"],
    ["idle", task("failed"), "error"],
    ["error", null, null],
  ];
  it.each(table)("agent %s, task %j → %s", (agent, t, event) => {
    expect(notifyEventFor(agent, t)).toBe(event);
  });

  it("keys are per sandbox, task and event; the delivery id is stable for a key", async () => {
    const a = notifyKey("sbx_1", task("completed"), "done");
    expect(a).toBe("sbx_1/ses_1@2026-01-01T00:00:00.000Z/done");
    expect(notifyKey("sbx_1", task("completed"), "error")).not.toBe(a);
    expect(notifyKey("sbx_2", task("completed"), "done")).not.toBe(a);
    expect(await deliveryId(a)).toBe(await deliveryId(a));
    expect(await deliveryId(a)).toMatch(/^[0-9a-f]{32}$/);
    expect(await deliveryId(a)).not.toBe(await deliveryId(notifyKey("sbx_2", task("completed"), "done")));
  });
});

describe("signWebhook", () => {
  it("is sha256= and the hex HMAC-SHA256 of `<timestamp>.<body>` under the secret", async () => {
    const body = '{"event":"done"}';
    const expected = createHmac("sha256", "s3cret-shared").update(`1767225600.${body}`).digest("hex");
    expect(await signWebhook("s3cret-shared", "1767225600", body)).toBe(`sha256=${expected}`);
    // Another secret, timestamp or body gives another signature.
    expect(await signWebhook("other-secret", "1767225600", body)).not.toBe(`sha256=${expected}`);
    expect(await signWebhook("s3cret-shared", "1767225601", body)).not.toBe(`sha256=${expected}`);
    expect(await signWebhook("s3cret-shared", "1767225600", `${body} `)).not.toBe(`sha256=${expected}`);
  });
});

describe("the retry schedule", () => {
  it("backs off 2 s, 4 s, 8 s … up to 5 min, 10 attempts, about 13.5 minutes in all", () => {
    const pauses = Array.from({ length: NOTIFY_RETRY.attempts - 1 }, (_, i) => NOTIFY_RETRY.delayMs(i + 2));
    expect(pauses).toEqual([2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000]);
    const total = pauses.reduce((a, b) => a + b, 0);
    expect(total).toBe(810_000);
  });

  it("retries 5xx, 408 and 429; not other answers", () => {
    expect([500, 502, 503, 408, 429].map(retryableStatus)).toEqual([true, true, true, true, true]);
    expect([400, 401, 403, 404, 410, 422].map(retryableStatus)).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
  });
});

describe("bodies", () => {
  const n: Notification = {
    delivery_id: "d1",
    event: "input",
    sandbox: { id: "sbx_1", name: "fix-login" },
    task: { session_id: "ses_1", prompt_summary: "fix it", started_at: "2026-01-01T00:00:00.000Z" },
    reason: "allow bash: rm -rf build?",
    at: "2026-01-01T00:01:00.000Z",
  };
  it("json is the notification itself; slack is {text} naming the sandbox, the event and why", () => {
    expect(JSON.parse(webhookBody(n, "json"))).toEqual(n);
    expect(JSON.parse(webhookBody(n, "slack"))).toEqual({
      text: "alpine: sandbox `fix-login` needs input: allow bash: rm -rf build?",
    });
  });
});

describe("defaultReason: the line a person reads when the agent gave none", () => {
  it.each([
    ["done", task("completed"), "the agent finished its task: WRITE A.md a"],
    ["done", null, "the agent finished its task"],
    ["input", task("running"), "the agent is waiting for an answer"],
    ["error", task("failed"), "the agent's task failed: WRITE A.md a"],
    ["error", null, "the agent's task failed"],
    ["budget", task("interrupted"), "the agent stopped at its budget"],
  ] as const)("%s with task %j", (event, t, reason) => {
    expect(defaultReason(event, t)).toBe(reason);
  });
});

describe("config notify → sandboxd's notify", () => {
  it("defaults to nothing to send", () => {
    const config = ConfigSchema.parse({});
    expect(config.notify).toEqual({ on: ["done", "input", "error", "budget"], webhooks: [], desktop: false });
    expect(sandboxdNotify(config.notify, {})).toBeUndefined();
  });

  it("reads each webhook's secret from the variable secret_env names; unset is config_invalid", () => {
    const config = ConfigSchema.parse({
      notify: {
        webhooks: [
          { url: "https://hooks.example/x", secret_env: "HOOK_SECRET" },
          { url: "https://hooks.slack.com/services/T/B/C", format: "slack" },
        ],
      },
    });
    expect(sandboxdNotify(config.notify, { HOOK_SECRET: "abc123secret" }, "/var/lib/ledger.json")).toEqual({
      on: ["done", "input", "error", "budget"],
      webhooks: [
        { url: "https://hooks.example/x", format: "json", secret: "abc123secret" },
        { url: "https://hooks.slack.com/services/T/B/C", format: "slack" },
      ],
      desktop: false,
      ledger_file: "/var/lib/ledger.json",
    });
    expect(() => sandboxdNotify(config.notify, {})).toThrow(/HOOK_SECRET/);
  });

  it("the control plane's notify_secrets: only the variables secret_env names; unset is config_invalid", () => {
    const config = ConfigSchema.parse({
      notify: {
        webhooks: [
          { url: "https://hooks.example/x", secret_env: "HOOK_SECRET" },
          { url: "https://hooks.slack.com/services/T/B/C", format: "slack" },
        ],
      },
    });
    expect(notifySecrets(config.notify, { HOOK_SECRET: "abc123secret", OTHER: "not sent" })).toEqual({
      HOOK_SECRET: "abc123secret",
    });
    expect(() => notifySecrets(config.notify, {})).toThrow(/HOOK_SECRET/);
    // Nothing to send (no webhook, or no event): nothing read, nothing required.
    expect(notifySecrets(ConfigSchema.parse({}).notify, {})).toEqual({});
    expect(notifySecrets({ ...config.notify, on: [] }, {})).toEqual({});
  });

  it("refuses a secret written in the config, an unknown event and a non-http URL", () => {
    expect(() =>
      ConfigSchema.parse({ notify: { webhooks: [{ url: "https://x.example", secret: "inline" }] } }),
    ).toThrow();
    expect(() => ConfigSchema.parse({ notify: { on: ["finished"] } })).toThrow();
    expect(() => ConfigSchema.parse({ notify: { webhooks: [{ url: "file:///etc/passwd" }] } })).toThrow();
  });
});
