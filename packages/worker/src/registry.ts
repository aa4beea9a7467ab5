import { DurableObject } from "cloudflare:workers";
import type { ListItemView } from "@alpine/core";
import { rateLimitDecision } from "@alpine/core/github-front";
import { withOverlaps } from "@alpine/core/views";
import { openJson, sealJson } from "./crypto.ts";
import type { Env } from "./env.ts";

/**
 * One Durable Object (named "registry") that backs `alpine list` and keeps
 * the model credentials of `alpine auth sync`, sealed with a key derived from
 * the control-plane secret. Each SandboxObject reports its summary here after
 * every write; the SandboxObject stays the source of truth for its sandbox.
 */
export class RegistryObject extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      `CREATE TABLE IF NOT EXISTS sandboxes (name TEXT PRIMARY KEY, item TEXT NOT NULL, updated_at TEXT NOT NULL);
       CREATE TABLE IF NOT EXISTS secrets (key TEXT PRIMARY KEY, sealed TEXT NOT NULL);
       CREATE TABLE IF NOT EXISTS github_deliveries (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
       CREATE TABLE IF NOT EXISTS github_rate (login TEXT PRIMARY KEY, start INTEGER NOT NULL, count INTEGER NOT NULL);`,
    );
  }

  async upsert(item: ListItemView, updatedAt: string): Promise<void> {
    // Reports may arrive out of order; the newer write wins.
    this.ctx.storage.sql.exec(
      `INSERT INTO sandboxes (name, item, updated_at) VALUES (?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET item = excluded.item, updated_at = excluded.updated_at
       WHERE excluded.updated_at >= sandboxes.updated_at`,
      item.name,
      JSON.stringify(item),
      updatedAt,
    );
  }

  async remove(name: string): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM sandboxes WHERE name = ?", name);
  }

  async list(): Promise<ListItemView[]> {
    // Overlaps across sandboxes: each SandboxObject knows only its own record; the registry all summaries.
    return withOverlaps(
      this.ctx.storage.sql
        .exec<{ item: string }>("SELECT item FROM sandboxes ORDER BY name")
        .toArray()
        .map((r) => JSON.parse(r.item) as ListItemView),
    );
  }

  /**
   * The dashboard's one-time login links (dashboard-routes.ts): true the first time `key` is
   * presented, false after; keys past their expiry are forgotten (the link's own expiry refuses them).
   */
  async consumeOnce(key: string, expiresAtMs: number): Promise<boolean> {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS used_once (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)");
    sql.exec("DELETE FROM used_once WHERE expires_at < ?", Date.now());
    const before = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM used_once WHERE key = ?", key).one().n;
    if (before > 0) return false;
    sql.exec("INSERT INTO used_once (key, expires_at) VALUES (?, ?)", key, expiresAtMs);
    return true;
  }

  async names(): Promise<string[]> {
    return this.ctx.storage.sql
      .exec<{ name: string }>("SELECT name FROM sandboxes ORDER BY name")
      .toArray()
      .map((r) => r.name);
  }

  /** Merges OpenCode auth.json entries (per provider id, whole) into the sealed store; returns the ids held. */
  async putAuth(entries: Record<string, unknown>): Promise<string[]> {
    const merged = { ...(await this.getAuth()), ...entries };
    const sealed = await sealJson(this.env.ALPINE_CONTROL_PLANE_TOKEN, "model-auth", merged);
    this.ctx.storage.sql.exec(
      "INSERT INTO secrets (key, sealed) VALUES ('model-auth', ?) ON CONFLICT(key) DO UPDATE SET sealed = excluded.sealed",
      sealed,
    );
    return Object.keys(merged).sort();
  }

  async getAuth(): Promise<Record<string, unknown>> {
    const row = this.ctx.storage.sql
      .exec<{ sealed: string }>("SELECT sealed FROM secrets WHERE key = 'model-auth'")
      .toArray()[0];
    if (!row) return {};
    return openJson<Record<string, unknown>>(this.env.ALPINE_CONTROL_PLANE_TOKEN, "model-auth", row.sealed);
  }

  /** What is stored for a test or an operator: whether a sealed value exists and its raw text (never decrypted). */
  async rawSecret(key: string): Promise<string | null> {
    const row = this.ctx.storage.sql
      .exec<{ sealed: string }>("SELECT sealed FROM secrets WHERE key = ?", key)
      .toArray()[0];
    return row?.sealed ?? null;
  }

  // ---- GitHub's front door (github-front.ts): webhook deliveries seen, per-user rate windows ----

  /**
   * Records a webhook delivery (`X-GitHub-Delivery`); false when it was recorded before, so a
   * redelivery acts once. Deliveries older than a week are forgotten (GitHub redelivers for days).
   */
  async claimDelivery(id: string, now = Date.now()): Promise<boolean> {
    this.ctx.storage.sql.exec("DELETE FROM github_deliveries WHERE at < ?", now - 7 * 24 * 3600_000);
    const seen = this.ctx.storage.sql.exec("SELECT 1 FROM github_deliveries WHERE id = ?", id).toArray();
    if (seen.length) return false;
    this.ctx.storage.sql.exec("INSERT INTO github_deliveries (id, at) VALUES (?, ?)", id, now);
    return true;
  }

  /** Forgets a delivery whose handling failed before anything started (its redelivery acts). */
  async releaseDelivery(id: string): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM github_deliveries WHERE id = ?", id);
  }

  /** Counts a command of `login` in its fixed window (core's rateLimitDecision); false: refused. */
  async admitCommand(
    login: string,
    opts: { limit: number; windowMs: number },
    now = Date.now(),
  ): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const who = login.toLowerCase();
    const row = this.ctx.storage.sql
      .exec<{ start: number; count: number }>("SELECT start, count FROM github_rate WHERE login = ?", who)
      .toArray()[0];
    const d = rateLimitDecision(row ? { start: row.start, count: row.count } : null, now, opts);
    this.ctx.storage.sql.exec(
      `INSERT INTO github_rate (login, start, count) VALUES (?, ?, ?)
       ON CONFLICT(login) DO UPDATE SET start = excluded.start, count = excluded.count`,
      who,
      d.window.start,
      d.window.count,
    );
    return { allowed: d.allowed, retryAfterMs: d.retryAfterMs };
  }
}
