import { AlpineError } from "./errors.ts";
import { hmacSha256, toHex } from "./hmac.ts";
import type { AgentState } from "./schemas.ts";

/**
 * Notifications on done / needs input / error / budget (docs/config.md, `notify`): which state of
 * the agent is worth one, the bodies (signed JSON webhook, Slack incoming webhook), the signature
 * and the retry schedule. Pure and runtime-agnostic (WebCrypto, no `node:`): sandboxd sends them
 * locally and in Docker (packages/sandboxd/src/notify.ts).
 */

export const NOTIFY_EVENTS = ["done", "input", "error", "budget"] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/** The task a notification is about, as sandboxd's status reports it. */
export interface NotifyTask {
  session_id: string;
  prompt_summary: string;
  /** `interrupted`: stopped at its budget or by a crash (the agent's state says which). */
  state: "running" | "completed" | "failed" | "interrupted";
  started_at: string;
}

export interface Notification {
  /** The same for every attempt and every resend of this (sandbox, task, event): receivers dedupe on it. */
  delivery_id: string;
  event: NotifyEvent;
  sandbox: { id: string; name: string };
  task: { session_id: string; prompt_summary: string; started_at: string } | null;
  /** One line a person reads: what the agent asks, the error, what the budget spent. */
  reason: string;
  at: string;
}

/**
 * The event the agent's current state is worth, or null. A state, not a transition: sandboxd looks
 * at it repeatedly and the ledger (one key per sandbox, task and event) keeps it to one delivery,
 * across restarts too. `done` needs a task that completed: an idle agent nobody gave work is news
 * to no one.
 */
export function notifyEventFor(agent: AgentState, task: NotifyTask | null): NotifyEvent | null {
  if (agent === "needs_input") return "input";
  if (agent === "budget") return "budget";
  if (agent === "error" || task?.state === "failed") return task ? "error" : null;
  if (agent === "idle" && task?.state === "completed") return "done";
  return null;
}

/** The ledger key: per sandbox, per task (its session and start) and event. */
export function notifyKey(sandboxId: string, task: NotifyTask | null, event: NotifyEvent): string {
  return `${sandboxId}/${task ? `${task.session_id}@${task.started_at}` : "-"}/${event}`;
}

export function defaultReason(event: NotifyEvent, task: NotifyTask | null): string {
  const what = task ? `: ${task.prompt_summary}` : "";
  switch (event) {
    case "done":
      return `the agent finished its task${what}`;
    case "input":
      return "the agent is waiting for an answer";
    case "error":
      return `the agent's task failed${what}`;
    case "budget":
      return "the agent stopped at its budget";
  }
}

/** A stable delivery id from the ledger key: hex of SHA-256, 32 characters. */
export async function deliveryId(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return toHex(new Uint8Array(digest)).slice(0, 32);
}

/** Headers of a signed webhook delivery (docs/config.md, "Verifying a webhook"). */
export const NOTIFY_HEADERS = {
  signature: "x-alpine-signature",
  timestamp: "x-alpine-timestamp",
  delivery: "x-alpine-delivery",
  event: "x-alpine-event",
} as const;

/**
 * `sha256=` and the hex HMAC-SHA256, keyed by the shared secret, of `<timestamp>.<body>`: the
 * timestamp is signed so a receiver can refuse an old delivery replayed.
 */
export async function signWebhook(secret: string, timestamp: string, body: string): Promise<string> {
  return `sha256=${toHex(await hmacSha256(secret, `${timestamp}.${body}`))}`;
}

/** The request body for a webhook of this format. */
export function webhookBody(n: Notification, format: "json" | "slack"): string {
  if (format === "json") return JSON.stringify(n);
  const title: Record<NotifyEvent, string> = {
    done: "finished",
    input: "needs input",
    error: "failed",
    budget: "reached its budget",
  };
  // Slack's incoming webhooks take `text` (mrkdwn); the sandbox name is code-formatted.
  return JSON.stringify({ text: `alpine: sandbox \`${n.sandbox.name}\` ${title[n.event]}: ${n.reason}` });
}

/**
 * Retries with backoff: attempt 1 at once, then 2 s, 4 s, 8 s, … capped at 5 min, 10 attempts in
 * all (≈ 13.5 min). A delivery still failing then stays pending in the ledger and is tried again
 * when sandboxd starts (at least once, never silently dropped while the sandbox lives).
 */
export const NOTIFY_RETRY = {
  attempts: 10,
  /** The pause before attempt `attempt` (2, 3, …). */
  delayMs: (attempt: number) => Math.min(300_000, 1_000 * 2 ** (attempt - 1)),
} as const;

/** Whether an HTTP answer is worth another attempt: 5xx, 408 and 429; other 4xx will not change. */
export function retryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/** The config's `notify` section (core/src/config.ts). */
export interface NotifyConfig {
  on: NotifyEvent[];
  webhooks: { url: string; format: "json" | "slack"; secret_env?: string }[];
  desktop: boolean;
}

/** sandboxd's `notify` start config (sandboxd-api.ts). */
export interface SandboxdNotify {
  on: NotifyEvent[];
  webhooks: { url: string; format: "json" | "slack"; secret?: string }[];
  desktop: boolean;
  ledger_file?: string;
}

/**
 * sandboxd's `notify` from the config: each webhook's secret read from the variable its
 * `secret_env` names (`env`: the launching CLI's environment). Undefined when nothing is to be sent.
 * A named variable that is not set is a config error, said before anything starts.
 */
export function sandboxdNotify(
  config: NotifyConfig,
  env: Record<string, string | undefined>,
  ledgerFile?: string,
): SandboxdNotify | undefined {
  if ((config.webhooks.length === 0 && !config.desktop) || config.on.length === 0) return undefined;
  const webhooks = config.webhooks.map((w, i) => {
    if (!w.secret_env) return { url: w.url, format: w.format };
    const secret = env[w.secret_env];
    if (!secret) {
      throw new AlpineError(
        "config_invalid",
        `notify.webhooks[${i}].secret_env names ${w.secret_env}, which is not set`,
        {
          key: `notify.webhooks.${i}.secret_env`,
        },
      );
    }
    return { url: w.url, format: w.format, secret };
  });
  return {
    on: config.on,
    webhooks,
    desktop: config.desktop,
    ...(ledgerFile ? { ledger_file: ledgerFile } : {}),
  };
}

/**
 * For the Cloudflare control plane, where the sandbox object sends the notifications: the value
 * of each variable a webhook's `secret_env` names, from the launching CLI's environment (`env`),
 * keyed by the variable's name. An unset one is the same config error as for sandboxd.
 */
export function notifySecrets(
  config: NotifyConfig,
  env: Record<string, string | undefined>,
): Record<string, string> {
  const resolved = sandboxdNotify({ ...config, desktop: false }, env);
  const secrets: Record<string, string> = {};
  config.webhooks.forEach((w, i) => {
    const secret = resolved?.webhooks[i]?.secret;
    if (w.secret_env && secret) secrets[w.secret_env] = secret;
  });
  return secrets;
}
