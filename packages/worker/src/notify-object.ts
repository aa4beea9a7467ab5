import { type AlpineConfig, noteEvent, type SandboxRecord } from "@alpine/core";
import {
  defaultReason,
  deliveryId,
  NOTIFY_HEADERS,
  NOTIFY_RETRY,
  type Notification,
  type NotifyTask,
  notifyEventFor,
  notifyKey,
  retryableStatus,
  signWebhook,
  webhookBody,
} from "@alpine/core/notify";
import { openJson, sealJson } from "./crypto.ts";
import type { DoStateStore } from "./do-store.ts";

/**
 * Notifications on Cloudflare (config `notify`, docs/cloudflare.md "Notifications"): no sandboxd
 * watches the agent for the user there, the sandbox's Durable Object does. Each time it sees the
 * record (its alarm's probe and reconcile, and every record write a request makes), core's
 * notifyEventFor says whether the agent's state is worth one; a new (sandbox, task, event) goes
 * into a ledger in the object's SQLite before any attempt, one row per webhook, so nothing is sent
 * twice — not when the alarm repeats, not after a teardown and resume (the object and its storage
 * outlive both). A failed attempt is retried by the object's alarm (`nextDueAt`), never by sleeping
 * in a request. Every attempt is a note in the sandbox's event history, which `alpine logs` shows.
 *
 * Secrets: the webhook's HMAC secret and its URL (a Slack URL is its own secret) are kept sealed
 * (AES-GCM under a key derived from the control-plane token, crypto.ts), in the row and in the
 * `notify-secrets` entry; notes name a webhook by index and host only.
 */

/** A webhook as one delivery row keeps it (sealed): what to send to, with the secret to sign with. */
interface SealedHook {
  url: string;
  format: "json" | "slack";
  secret?: string;
}

interface DeliveryRow extends Record<string, SqlStorageValue> {
  key: string;
  target: number;
  sandbox_id: string;
  name: string;
  notification: string;
  hook: string;
  attempts: number;
}

const TABLE = `CREATE TABLE IF NOT EXISTS notify_deliveries (
  key TEXT NOT NULL, target INTEGER NOT NULL, sandbox_id TEXT NOT NULL, name TEXT NOT NULL,
  notification TEXT NOT NULL, hook TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
  next_at INTEGER NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (key, target))`;

const SECRETS_KV = "notify-secrets";
const SEAL_SECRETS = "notify-secrets";
const SEAL_HOOK = "notify-hook";
const ATTEMPT_TIMEOUT_MS = 10_000;

/** The task as core's notify functions read it, from the record's last observation. */
export function notifyTaskOf(record: Pick<SandboxRecord, "task">): NotifyTask | null {
  const t = record.task;
  if (!t) return null;
  return {
    session_id: t.session_id ?? "-",
    prompt_summary: t.prompt_summary,
    state: t.state ?? (t.finished_at ? "completed" : "running"),
    started_at: t.started_at,
  };
}

export class ObjectNotifier {
  private readonly inFlight = new Set<string>();
  /** Keys already decided by this instance (in the ledger, or not asked for): no config to open again. */
  private readonly decided = new Set<string>();

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly store: DoStateStore,
    private readonly token: string,
    /** The sandbox's config as kept (kept-config.ts), opened only when an event is new. */
    private readonly config: () => Promise<AlpineConfig>,
    /** Arms the object's alarm again once a retry is due (sandbox-object.ts). */
    private readonly wake: () => Promise<void>,
  ) {
    storage.sql.exec(TABLE);
  }

  /** Keeps the webhook secrets a launch or task brought (core's notifySecrets), sealed. */
  async keepSecrets(secrets: Record<string, string>): Promise<void> {
    this.store.setKv(SECRETS_KV, await sealJson(this.token, SEAL_SECRETS, secrets));
  }

  /** Records a notification the record's agent state is newly worth, then sends what is due. */
  async observe(record: SandboxRecord): Promise<void> {
    const task = notifyTaskOf(record);
    const event = notifyEventFor(record.agent, task);
    if (event) {
      const key = notifyKey(record.id, task, event);
      if (!this.decided.has(key) && !this.known(key)) {
        this.decided.add(key);
        await this.record(record, task, event, key).catch((err: unknown) => {
          this.decided.delete(key); // the next look tries again
          throw err;
        });
      }
    }
    await this.deliverDue();
  }

  private known(key: string): boolean {
    return (
      this.storage.sql.exec("SELECT 1 FROM notify_deliveries WHERE key = ? LIMIT 1", key).toArray().length > 0
    );
  }

  private async record(
    record: SandboxRecord,
    task: NotifyTask | null,
    event: NonNullable<ReturnType<typeof notifyEventFor>>,
    key: string,
  ): Promise<void> {
    const { notify } = await this.config();
    if (!notify.on.includes(event) || notify.webhooks.length === 0) return;
    const secrets = await this.secrets();
    const notification: Notification = {
      delivery_id: await deliveryId(key),
      event,
      sandbox: { id: record.id, name: record.name },
      task: task
        ? { session_id: task.session_id, prompt_summary: task.prompt_summary, started_at: task.started_at }
        : null,
      reason: record.agent_reason ?? defaultReason(event, task),
      at: new Date().toISOString(),
    };
    const rows: unknown[][] = [];
    const missing: string[] = [];
    for (const [i, w] of notify.webhooks.entries()) {
      const secret = w.secret_env ? secrets[w.secret_env] : undefined;
      if (w.secret_env && !secret) {
        // Never sent unsigned when a signature was asked for: the receiver would rightly refuse it.
        missing.push(
          `webhook ${i} (${hostOf(w.url)}): no secret for ${w.secret_env} came with a launch or task`,
        );
        continue;
      }
      const hook: SealedHook = { url: w.url, format: w.format, ...(secret ? { secret } : {}) };
      rows.push([
        key,
        i,
        record.id,
        record.name,
        JSON.stringify(notification),
        await sealJson(this.token, SEAL_HOOK, hook),
        "pending",
        0,
        0,
        notification.at,
      ]);
    }
    this.storage.transactionSync(() => {
      // Another look of this instance may have recorded it meanwhile (an await above): the key wins once.
      if (this.known(key)) return;
      for (const row of rows) {
        this.storage.sql.exec(
          "INSERT INTO notify_deliveries (key, target, sandbox_id, name, notification, hook, state, attempts, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          ...(row as SqlStorageValue[]),
        );
      }
    });
    await this.note(
      record,
      `notify: event ${event} (delivery ${notification.delivery_id}) to ${rows.length} webhook(s)`,
    );
    for (const m of missing) await this.note(record, `notify: not sent: ${m}`);
  }

  private async secrets(): Promise<Record<string, string>> {
    const sealed = this.store.getKv(SECRETS_KV);
    if (!sealed) return {};
    return openJson<Record<string, string>>(this.token, SEAL_SECRETS, sealed).catch((err: unknown) => {
      // Sealed under an earlier control-plane token: the next launch or task brings them again.
      console.warn("alpine: the kept webhook secrets cannot be opened", { error: String(err) });
      return {};
    });
  }

  /** Sends every pending delivery whose time has come (the first attempt, or a retry). */
  async deliverDue(now = Date.now()): Promise<void> {
    const due = this.storage.sql
      .exec<DeliveryRow>(
        "SELECT key, target, sandbox_id, name, notification, hook, attempts FROM notify_deliveries WHERE state = 'pending' AND next_at <= ?",
        now,
      )
      .toArray();
    if (due.length === 0) return;
    await Promise.all(due.map((row) => this.attempt(row)));
    await this.wake();
  }

  /** When the next retry is due (ms since the epoch), or null when nothing is pending. */
  nextDueAt(): number | null {
    const row = this.storage.sql
      .exec<{ at: number | null }>("SELECT MIN(next_at) AS at FROM notify_deliveries WHERE state = 'pending'")
      .toArray()[0];
    return row?.at ?? null;
  }

  private async attempt(row: DeliveryRow): Promise<void> {
    const id = `${row.key}#${row.target}`;
    if (this.inFlight.has(id)) return;
    this.inFlight.add(id);
    const attempt = row.attempts + 1;
    const where = (state: string, nextAt: number) =>
      this.storage.sql.exec(
        "UPDATE notify_deliveries SET state = ?, attempts = ?, next_at = ? WHERE key = ? AND target = ?",
        state,
        attempt,
        nextAt,
        row.key,
        row.target,
      );
    // Claimed before the request: a look meanwhile (another request, the alarm) does not send it too.
    where("pending", Date.now() + ATTEMPT_TIMEOUT_MS + NOTIFY_RETRY.delayMs(attempt + 1));
    const sandbox = { id: row.sandbox_id, name: row.name };
    try {
      const n = JSON.parse(row.notification) as Notification;
      const hook = await openJson<SealedHook>(this.token, SEAL_HOOK, row.hook);
      const label = `webhook ${row.target} (${hostOf(hook.url)}), event ${n.event}, delivery ${n.delivery_id}, attempt ${attempt}`;
      const outcome = await send(hook, n);
      if (outcome.ok) {
        where("delivered", 0);
        await this.note(sandbox, `notify: delivered: ${label}: HTTP ${outcome.status}`);
        return;
      }
      const why = outcome.status ? `HTTP ${outcome.status}` : outcome.error;
      if (outcome.status && !retryableStatus(outcome.status)) {
        where("failed", 0);
        await this.note(sandbox, `notify: refused, not retried: ${label}: ${why}`);
        return;
      }
      if (attempt >= NOTIFY_RETRY.attempts) {
        where("failed", 0);
        await this.note(
          sandbox,
          `notify: attempt failed, gave up after ${attempt} attempts: ${label}: ${why}`,
        );
        return;
      }
      const delayMs = NOTIFY_RETRY.delayMs(attempt + 1);
      where("pending", Date.now() + delayMs);
      await this.note(
        sandbox,
        `notify: attempt failed: ${label}: ${why}; next in ${Math.round(delayMs / 1000)} s`,
      );
    } catch (err) {
      // A sealed hook that no longer opens (the control-plane token changed): nothing can send it.
      where("failed", 0);
      await this.note(
        sandbox,
        `notify: not sent: webhook ${row.target}: ${String((err as Error)?.message ?? err)}`,
      );
    } finally {
      this.inFlight.delete(id);
    }
  }

  private note(sandbox: { id: string; name: string }, reason: string): Promise<void> {
    return this.store.appendEvents([noteEvent(sandbox, reason)]);
  }
}

/** One POST of the notification to a webhook, signed when it has a secret (as sandboxd's notify.ts). */
async function send(
  hook: SealedHook,
  n: Notification,
): Promise<{ ok: true; status: number } | { ok: false; status: number | null; error: string }> {
  const body = webhookBody(n, hook.format);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (hook.format === "json") {
    const timestamp = String(Math.floor(Date.now() / 1000));
    headers[NOTIFY_HEADERS.delivery] = n.delivery_id;
    headers[NOTIFY_HEADERS.event] = n.event;
    headers[NOTIFY_HEADERS.timestamp] = timestamp;
    if (hook.secret) headers[NOTIFY_HEADERS.signature] = await signWebhook(hook.secret, timestamp, body);
  }
  try {
    const res = await fetch(hook.url, {
      method: "POST",
      headers,
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
    });
    await res.body?.cancel();
    return res.ok ? { ok: true, status: res.status } : { ok: false, status: res.status, error: "" };
  } catch (err) {
    return { ok: false, status: null, error: String((err as Error)?.message ?? err) };
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "?";
  }
}
