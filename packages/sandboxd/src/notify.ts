import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
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
  type SandboxdNotify,
  signWebhook,
  webhookBody,
} from "@alpine/core/notify";
import type { AgentState } from "@alpine/core/schemas";
import type { Logger } from "./log.ts";
import { sleep } from "./proc.ts";

/**
 * Sends the notifications of config `notify` (docs/config.md) while no CLI runs: every second it
 * looks at the agent's state (core's notifyEventFor decides what is worth one), and a new event
 * goes into the ledger before any attempt (at least once: a sandboxd that dies mid-delivery tries
 * again at its next start), then to each webhook with retries and backoff, and to the desktop.
 * The ledger is keyed per sandbox, task and event, so nothing is sent twice, across a restart of
 * sandboxd and (its file being outside the runtime dir) a teardown and resume. Every attempt is a
 * line of sandboxd's log, which `alpine logs` shows.
 */

/** What the notifier reads of the agent: AgentTracker, read structurally (`reason` comes from the signals work). */
export interface AgentSource {
  readonly state: AgentState;
  readonly reason?: string | null;
  taskStatus(): NotifyTask | null;
}

type TargetState = "pending" | "delivered" | "failed";

interface LedgerEntry {
  notification: Notification;
  /** Per target: `webhook:<i>` or `desktop`. */
  targets: Record<string, TargetState>;
}

interface Ledger {
  entries: Record<string, LedgerEntry>;
}

const LOOK_EVERY_MS = 1_000;
const ATTEMPT_TIMEOUT_MS = 10_000;

export class Notifier {
  private timer: NodeJS.Timeout | null = null;
  private ledger: Ledger;
  private readonly inFlight = new Set<string>();
  private looking = false;
  private closed = false;
  private readonly desktopBin: string | null;

  constructor(
    private readonly config: SandboxdNotify,
    private readonly sandbox: { id: string; name: string },
    private readonly agent: AgentSource,
    private readonly log: Logger,
    private readonly ledgerFile: string,
  ) {
    for (const w of config.webhooks) {
      log.addSecret(w.secret);
      // A Slack incoming-webhook URL is its own secret: the log names the webhook by index and host.
      log.addSecret(w.url);
    }
    this.ledger = this.load();
    this.desktopBin = config.desktop ? findOnPath("notify-send") : null;
    if (config.desktop && !this.desktopBin) {
      log.warn("notify: desktop notifications asked for, but notify-send is not on this machine's PATH");
    }
  }

  start(): void {
    // What an earlier sandboxd of this sandbox left pending is sent first.
    for (const [key, entry] of Object.entries(this.ledger.entries)) {
      for (const [target, state] of Object.entries(entry.targets)) {
        if (state === "pending") void this.deliver(key, target);
      }
    }
    this.timer = setInterval(() => void this.look(), LOOK_EVERY_MS);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** One look at the agent; exposed for tests. */
  async look(): Promise<void> {
    if (this.looking || this.closed) return;
    this.looking = true;
    try {
      const task = this.agent.taskStatus();
      const event = notifyEventFor(this.agent.state, task);
      if (!event || !this.config.on.includes(event)) return;
      const key = notifyKey(this.sandbox.id, task, event);
      if (this.ledger.entries[key]) return;
      const notification: Notification = {
        delivery_id: await deliveryId(key),
        event,
        sandbox: this.sandbox,
        task: task
          ? { session_id: task.session_id, prompt_summary: task.prompt_summary, started_at: task.started_at }
          : null,
        reason: this.agent.reason ?? defaultReason(event, task),
        at: new Date().toISOString(),
      };
      const targets: Record<string, TargetState> = {};
      this.config.webhooks.forEach((_w, i) => {
        targets[`webhook:${i}`] = "pending";
      });
      if (this.desktopBin) targets.desktop = "pending";
      this.ledger.entries[key] = { notification, targets };
      this.save();
      this.log.info("notify: event", {
        event,
        delivery_id: notification.delivery_id,
        targets: Object.keys(targets),
      });
      for (const target of Object.keys(targets)) void this.deliver(key, target);
    } catch (err) {
      this.log.warn("notify: look failed", { error: String((err as Error)?.message ?? err) });
    } finally {
      this.looking = false;
    }
  }

  private async deliver(key: string, target: string): Promise<void> {
    const id = `${key}#${target}`;
    if (this.inFlight.has(id)) return;
    this.inFlight.add(id);
    try {
      const entry = this.ledger.entries[key];
      if (!entry) return;
      const n = entry.notification;
      const result = target === "desktop" ? await this.desktop(n) : await this.webhook(n, target);
      // A closed notifier writes nothing more: the ledger is the next sandboxd's now.
      if (this.closed) return;
      entry.targets[target] = result;
      this.save();
    } finally {
      this.inFlight.delete(id);
    }
  }

  private async webhook(n: Notification, target: string): Promise<TargetState> {
    const index = Number(target.split(":")[1]);
    const hook = this.config.webhooks[index];
    if (!hook) return "failed";
    const where = { webhook: index, host: safeHost(hook.url), format: hook.format };
    const body = webhookBody(n, hook.format);
    for (let attempt = 1; attempt <= NOTIFY_RETRY.attempts; attempt++) {
      if (attempt > 1) await sleep(NOTIFY_RETRY.delayMs(attempt));
      // Stopped (sandboxd shutting down): what is not delivered stays pending for the next start.
      if (this.closed) return "pending";
      const timestamp = String(Math.floor(Date.now() / 1000));
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (hook.format === "json") {
        headers[NOTIFY_HEADERS.delivery] = n.delivery_id;
        headers[NOTIFY_HEADERS.event] = n.event;
        headers[NOTIFY_HEADERS.timestamp] = timestamp;
        if (hook.secret) headers[NOTIFY_HEADERS.signature] = await signWebhook(hook.secret, timestamp, body);
      }
      const fields = { ...where, event: n.event, delivery_id: n.delivery_id, attempt };
      try {
        const res = await fetch(hook.url, {
          method: "POST",
          headers,
          body,
          redirect: "manual",
          signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        });
        await res.body?.cancel();
        if (res.ok) {
          this.log.info("notify: delivered", { ...fields, status: res.status });
          return "delivered";
        }
        if (!retryableStatus(res.status)) {
          this.log.warn("notify: refused, not retried", { ...fields, status: res.status });
          return "failed";
        }
        this.log.warn("notify: attempt failed", { ...fields, status: res.status });
      } catch (err) {
        this.log.warn("notify: attempt failed", { ...fields, error: String((err as Error)?.message ?? err) });
      }
    }
    this.log.warn("notify: gave up for now; sandboxd tries again at its next start", {
      ...where,
      event: n.event,
      delivery_id: n.delivery_id,
    });
    return "pending";
  }

  private desktop(n: Notification): Promise<TargetState> {
    const bin = this.desktopBin;
    if (!bin) return Promise.resolve("failed");
    return new Promise((resolve) => {
      const child = spawn(bin, ["--app-name=alpine", `alpine: ${n.sandbox.name} ${n.event}`, n.reason], {
        stdio: "ignore",
      });
      child.once("error", (err) => {
        this.log.warn("notify: desktop failed", { event: n.event, error: err.message });
        resolve("failed");
      });
      child.once("exit", (code) => {
        if (code === 0)
          this.log.info("notify: desktop shown", { event: n.event, delivery_id: n.delivery_id });
        else this.log.warn("notify: desktop failed", { event: n.event, exit_code: code });
        resolve(code === 0 ? "delivered" : "failed");
      });
    });
  }

  private load(): Ledger {
    try {
      const parsed = JSON.parse(readFileSync(this.ledgerFile, "utf8")) as Ledger;
      if (parsed && typeof parsed.entries === "object") return parsed;
    } catch (err) {
      // No ledger yet (a first start) is the normal case; a torn one is logged and started afresh.
      if (existsSync(this.ledgerFile)) {
        this.log.warn("notify: ledger unreadable, starting a new one", {
          error: String((err as Error)?.message),
        });
      }
    }
    return { entries: {} };
  }

  /** Written whole through a temp file and rename: a crash leaves the old or the new ledger, never half of one. */
  private save(): void {
    mkdirSync(dirname(this.ledgerFile), { recursive: true, mode: 0o700 });
    const tmp = `${this.ledgerFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.ledger), { mode: 0o600 });
    renameSync(tmp, this.ledgerFile);
  }
}

function safeHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "?";
  }
}

function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}
