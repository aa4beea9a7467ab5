import { DurableObject } from "cloudflare:workers";
import {
  AlpineError,
  type AuditEntryView,
  type ListItemView,
  listShows,
  type PrincipalRef,
  type SandboxSecret,
  type SecretListing,
  type SessionEntryView,
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

/** A session's id in `alpine sessions`: a prefix of its token's SHA-256, which names it but signs nobody in. */
export const sessionId = (hash: string) => hash.slice(0, 16);

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
    // identity (admin revocation, allow-list re-check): columns added after the tables first shipped.
    for (const column of [
      "sessions ADD COLUMN checked_at TEXT",
      "sessions ADD COLUMN github_sealed TEXT",
      "audit ADD COLUMN subject TEXT",
    ]) {
      try {
        ctx.storage.sql.exec(`ALTER TABLE ${column}`);
      } catch {
        // The column is there already (the object's storage outlives this constructor).
      }
    }
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
    return Promise.all(rows.map((r) => this.openSealedRow(r.key, r.sealed)));
  }

  /** A repo secret's row opened, or an error naming it and saying how to mend it (never its value). */
  private async openSealedRow(key: string, sealed: string): Promise<StoredSecret & { created_at?: string }> {
    try {
      return await openJson(this.env.ALPINE_CONTROL_PLANE_TOKEN, key, sealed);
    } catch {
      // Sealed under another control-plane token (rotated) or damaged: say which one, not the raw crypto error.
      const [scope, name] = [
        key.slice(REPO_SECRET_PREFIX.length, key.lastIndexOf(":")),
        key.slice(key.lastIndexOf(":") + 1),
      ];
      throw new AlpineError(
        "internal_error",
        `the repo secret ${name} (${scope}) cannot be opened: it was sealed under another control-plane token or is damaged; set it again with \`alpine secrets set ${name}\` or remove it with \`alpine secrets rm ${name}\``,
        { name, scope },
      );
    }
  }

  private async openRepoSecret(key: string): Promise<(StoredSecret & { created_at?: string }) | null> {
    const row = this.ctx.storage.sql
      .exec<{ sealed: string }>("SELECT sealed FROM secrets WHERE key = ?", key)
      .toArray()[0];
    return row ? this.openSealedRow(key, row.sealed) : null;
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
    githubSealed: string | null = null,
  ): Promise<void> {
    const now = new Date().toISOString();
    // Expired sessions are dropped as new ones come in, so the table does not grow without end.
    this.ctx.storage.sql.exec("DELETE FROM sessions WHERE expires_at < ?", now);
    this.ctx.storage.sql.exec(
      `INSERT INTO sessions (hash, kind, principal, created_at, expires_at, checked_at, github_sealed)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      hash,
      kind,
      JSON.stringify(principal),
      now,
      expiresAt,
      now,
      githubSealed,
    );
  }

  /**
   * A live session of that kind with what the allow-list re-check needs (identity.ts): when its
   * membership was last confirmed, and the sealed GitHub token to confirm it with (org members only).
   */
  async liveSession(
    hash: string,
    kind: "web" | "cli",
  ): Promise<{ principal: Principal; checkedAt: string | null; githubSealed: string | null } | null> {
    const row = this.ctx.storage.sql
      .exec<{
        principal: string;
        expires_at: string;
        revoked_at: string | null;
        checked_at: string | null;
        github_sealed: string | null;
      }>(
        "SELECT principal, expires_at, revoked_at, checked_at, github_sealed FROM sessions WHERE hash = ? AND kind = ?",
        hash,
        kind,
      )
      .toArray()[0];
    if (!row || row.revoked_at || row.expires_at < new Date().toISOString()) return null;
    return {
      principal: JSON.parse(row.principal) as Principal,
      checkedAt: row.checked_at,
      githubSealed: row.github_sealed,
    };
  }

  /** The allow-list re-check confirmed this session's membership now. */
  async markChecked(hash: string, at: string): Promise<void> {
    this.ctx.storage.sql.exec("UPDATE sessions SET checked_at = ? WHERE hash = ?", at, hash);
  }

  /** Every stored session (expired ones until the next sign-in drops them), or one principal's; newest first. */
  async sessionsFor(principalId: string | null): Promise<SessionEntryView[]> {
    const now = new Date().toISOString();
    return this.ctx.storage.sql
      .exec<{
        hash: string;
        kind: "web" | "cli";
        principal: string;
        created_at: string;
        expires_at: string;
        revoked_at: string | null;
      }>(
        "SELECT hash, kind, principal, created_at, expires_at, revoked_at FROM sessions ORDER BY created_at DESC",
      )
      .toArray()
      .map((r) => ({
        id: sessionId(r.hash),
        principal: (JSON.parse(r.principal) as Principal).id,
        kind: r.kind,
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
        live: !r.revoked_at && r.expires_at >= now,
      }))
      .filter((s) => principalId === null || s.principal === principalId);
  }

  /**
   * Revokes one session by its id, or every live one of a principal: the ids revoked and whose
   * they were. Its next request is refused, since every request looks its session up here.
   */
  async revokeSessionsWhere(by: {
    id?: string;
    principal?: string;
  }): Promise<{ revoked: string[]; principals: string[] }> {
    const now = new Date().toISOString();
    const rows = this.ctx.storage.sql
      .exec<{ hash: string; principal: string }>(
        "SELECT hash, principal FROM sessions WHERE revoked_at IS NULL",
      )
      .toArray()
      .map((r) => ({ hash: r.hash, principal: (JSON.parse(r.principal) as Principal).id }))
      .filter((r) => (by.id !== undefined ? sessionId(r.hash) === by.id : r.principal === by.principal));
    for (const r of rows) {
      this.ctx.storage.sql.exec("UPDATE sessions SET revoked_at = ? WHERE hash = ?", now, r.hash);
    }
    return {
      revoked: rows.map((r) => sessionId(r.hash)),
      principals: [...new Set(rows.map((r) => r.principal))],
    };
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
      "INSERT INTO audit (at, principal, action, sandbox, outcome, subject) VALUES (?, ?, ?, ?, ?, ?)",
      entry.at,
      entry.principal,
      entry.action,
      entry.sandbox,
      entry.outcome,
      entry.subject ?? null,
    );
  }

  /** The newest `tail` entries, oldest first; a non-admin sees their own actions only. */
  async auditFor(principal: PrincipalRef, tail: number): Promise<AuditEntryView[]> {
    const rows = principal.admin
      ? this.ctx.storage.sql.exec<AuditEntryView>("SELECT * FROM audit ORDER BY seq DESC LIMIT ?", tail)
      : this.ctx.storage.sql.exec<AuditEntryView>(
          "SELECT * FROM audit WHERE principal = ? OR subject = ? ORDER BY seq DESC LIMIT ?",
          principal.id,
          principal.id,
          tail,
        );
    return rows
      .toArray()
      .reverse()
      .map(({ subject, ...r }) => (subject ? { ...r, subject } : { ...r }));
  }
}
