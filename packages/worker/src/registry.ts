import { DurableObject } from "cloudflare:workers";
import {
  type AuditEntryView,
  type ListItemView,
  listShows,
  type PrincipalRef,
  type SandboxSecret,
  type SecretListing,
  type StoredSecret,
  secretsForRepo,
} from "@alpine/core";
import { rateLimitDecision } from "@alpine/core/github-front";
import { withOverlaps } from "@alpine/core/views";
import { openJson, sealJson } from "./crypto.ts";
import type { Env } from "./env.ts";
import type { Principal } from "./identity.ts";

/** Repo secrets' rows in the `secrets` table (model credentials are `model-auth`). */
const REPO_SECRET_PREFIX = "repo-secret:";
/** A repo secret's row key (and sealing purpose); a name has no `:`, so the last one splits it off. */
const repoSecretKey = (scope: string, name: string) => `${REPO_SECRET_PREFIX}${scope}:${name}`;

/** One line of the audit log (core's AuditEntrySchema); `seq` is assigned when it is written. */
export type AuditEntry = Omit<AuditEntryView, "seq">;

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
       CREATE TABLE IF NOT EXISTS github_rate (login TEXT PRIMARY KEY, start INTEGER NOT NULL, count INTEGER NOT NULL);
       CREATE TABLE IF NOT EXISTS sessions (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, principal TEXT NOT NULL,
         created_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked_at TEXT);
       CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
         principal TEXT NOT NULL, action TEXT NOT NULL, sandbox TEXT, outcome TEXT NOT NULL);`,
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

  /** `list` for one caller: their own sandboxes, or every one for an admin who asked for all. */
  async listFor(principal: PrincipalRef, all: boolean): Promise<ListItemView[]> {
    return (await this.list()).filter((item) => listShows(principal, item.owner, all));
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

  // ---- repo secrets (`alpine secrets`): one row per scope and name, each sealed on its own ----

  /**
   * Stores a repo secret, sealed with a purpose naming its row (`repo-secret:<scope>:<name>`):
   * its own key, and a sealed value copied to another row (another repo) does not open there.
   */
  async putRepoSecret(entry: Omit<StoredSecret, "updated_at">): Promise<{ replaced: boolean }> {
    const key = repoSecretKey(entry.scope, entry.name);
    const before = await this.openRepoSecret(key);
    const now = new Date().toISOString();
    const stored: StoredSecret & { created_at: string } = {
      ...entry,
      created_at: before?.created_at ?? now,
      updated_at: now,
    };
    const sealed = await sealJson(this.env.ALPINE_CONTROL_PLANE_TOKEN, key, stored);
    this.ctx.storage.sql.exec(
      "INSERT INTO secrets (key, sealed) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET sealed = excluded.sealed",
      key,
      sealed,
    );
    return { replaced: before !== null };
  }

  /** Removes a repo secret; false when there was none of that name and scope. */
  async removeRepoSecret(scope: string, name: string): Promise<boolean> {
    return (
      this.ctx.storage.sql.exec("DELETE FROM secrets WHERE key = ?", repoSecretKey(scope, name)).rowsWritten >
      0
    );
  }

  /** Every repo secret without its value (`secrets ls`), by scope then name. */
  async listRepoSecrets(): Promise<SecretListing[]> {
    return (await this.allRepoSecrets())
      .map(({ name, scope, agent, updated_at }) => ({ name, scope, agent, updated_at }))
      .sort((a, b) => a.scope.localeCompare(b.scope) || a.name.localeCompare(b.name));
  }

  /** What a sandbox of `repo` gets at launch and resume: the global ones, the repo's own in their place. */
  async secretsFor(repo: string): Promise<SandboxSecret[]> {
    return secretsForRepo(await this.allRepoSecrets(), repo);
  }

  private async allRepoSecrets(): Promise<StoredSecret[]> {
    const rows = this.ctx.storage.sql
      .exec<{ key: string; sealed: string }>(
        "SELECT key, sealed FROM secrets WHERE key >= ? AND key < ?",
        REPO_SECRET_PREFIX,
        `${REPO_SECRET_PREFIX.slice(0, -1)};`,
      )
      .toArray();
    return Promise.all(
      rows.map((r) => openJson<StoredSecret>(this.env.ALPINE_CONTROL_PLANE_TOKEN, r.key, r.sealed)),
    );
  }

  private async openRepoSecret(key: string): Promise<(StoredSecret & { created_at?: string }) | null> {
    const row = this.ctx.storage.sql
      .exec<{ sealed: string }>("SELECT sealed FROM secrets WHERE key = ?", key)
      .toArray()[0];
    return row ? openJson(this.env.ALPINE_CONTROL_PLANE_TOKEN, key, row.sealed) : null;
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

  // ---------- sessions (identity.ts): only the SHA-256 of a session or CLI token is stored ----------

  async createSession(
    hash: string,
    kind: "web" | "cli",
    principal: Principal,
    expiresAt: string,
  ): Promise<void> {
    const now = new Date().toISOString();
    // Expired sessions are dropped as new ones come in, so the table does not grow without end.
    this.ctx.storage.sql.exec("DELETE FROM sessions WHERE expires_at < ?", now);
    this.ctx.storage.sql.exec(
      "INSERT INTO sessions (hash, kind, principal, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
      hash,
      kind,
      JSON.stringify(principal),
      now,
      expiresAt,
    );
  }

  /** The principal of a live session of that kind (not expired, not revoked), or null. */
  async sessionOf(hash: string, kind: "web" | "cli"): Promise<Principal | null> {
    const row = this.ctx.storage.sql
      .exec<{ principal: string; expires_at: string; revoked_at: string | null }>(
        "SELECT principal, expires_at, revoked_at FROM sessions WHERE hash = ? AND kind = ?",
        hash,
        kind,
      )
      .toArray()[0];
    if (!row || row.revoked_at || row.expires_at < new Date().toISOString()) return null;
    return JSON.parse(row.principal) as Principal;
  }

  async revokeSession(hash: string): Promise<boolean> {
    const live = this.ctx.storage.sql.exec(
      "UPDATE sessions SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL",
      new Date().toISOString(),
      hash,
    ).rowsWritten;
    return live > 0;
  }

  /** How many sessions are stored, and whether any holds this exact text (tests: nothing in clear). */
  async sessionsHolding(text: string): Promise<{ count: number; holding: number }> {
    const rows = this.ctx.storage.sql
      .exec<{ hash: string; principal: string }>("SELECT hash, principal FROM sessions")
      .toArray();
    return {
      count: rows.length,
      holding: rows.filter((r) => r.hash.includes(text) || r.principal.includes(text)).length,
    };
  }

  // ---------- audit log ----------

  async audit(entry: AuditEntry): Promise<void> {
    this.ctx.storage.sql.exec(
      "INSERT INTO audit (at, principal, action, sandbox, outcome) VALUES (?, ?, ?, ?, ?)",
      entry.at,
      entry.principal,
      entry.action,
      entry.sandbox,
      entry.outcome,
    );
  }

  /** The newest `tail` entries, oldest first; a non-admin sees their own actions only. */
  async auditFor(principal: PrincipalRef, tail: number): Promise<AuditEntryView[]> {
    const rows = principal.admin
      ? this.ctx.storage.sql.exec<AuditEntryView>("SELECT * FROM audit ORDER BY seq DESC LIMIT ?", tail)
      : this.ctx.storage.sql.exec<AuditEntryView>(
          "SELECT * FROM audit WHERE principal = ? ORDER BY seq DESC LIMIT ?",
          principal.id,
          tail,
        );
    return rows
      .toArray()
      .reverse()
      .map((r) => ({ ...r }));
  }
}
