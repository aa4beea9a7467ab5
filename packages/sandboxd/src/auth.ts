import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

const LOGIN_TTL_MS = 60_000;
/** A UI login lasts a working day; after it `alpine open` mints a new link. */
export const UI_SESSION_TTL_MS = 12 * 3600_000;
const MAX_UI_SESSIONS = 200;

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/**
 * Codes and sessions are stored by their sha256: looking a digest up in a Map
 * leaks nothing usable about the secret, so no constant-time loop is needed.
 */
function hashKey(s: string): string {
  return digest(s).toString("hex");
}

/** Constant-time comparison of two secrets (of any lengths). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** The bearer token of `Authorization: Bearer <token>`, if any. */
export function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1];
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

/**
 * Bearer token for /v1, one-time login codes (60 s) and the UI's cookie
 * sessions. The cookie is named per sandbox (alpine_session_<id>): browsers
 * do not separate cookies by port, so sandboxes on one host would otherwise
 * log each other out.
 */
/**
 * What a login code or session opens: the UI, or one preview port
 * (`preview:<port>`). A code minted for one never opens another.
 */
export type AuthScope = "ui" | `preview:${number}`;

export class Auth {
  private readonly codes = new Map<string, { exp: number; scope: AuthScope }>();
  private readonly sessions = new Map<string, { since: number; scope: AuthScope }>();
  readonly cookieName: string;
  private readonly idPart: string;

  constructor(
    private readonly token: string,
    sandboxId: string,
  ) {
    this.idPart = sandboxId.replace(/[^A-Za-z0-9_-]/g, "").slice(0, 40);
    this.cookieName = `alpine_session_${this.idPart}`;
  }

  /** The cookie of a scope: the UI's, or `alpine_preview_<id>_<port>` (its own host anyway). */
  cookieNameOf(scope: AuthScope): string {
    return scope === "ui"
      ? this.cookieName
      : `alpine_preview_${this.idPart}_${scope.slice("preview:".length)}`;
  }

  checkBearer(header: string | undefined): boolean {
    const given = bearer(header);
    // Compare even when absent, so timing says nothing.
    return safeEqual(given ?? "", this.token) && given !== undefined;
  }

  newLoginCode(now = Date.now(), scope: AuthScope = "ui"): { code: string; expires_at: string } {
    for (const [c, v] of this.codes) if (v.exp <= now) this.codes.delete(c);
    const code = randomBytes(24).toString("base64url");
    const exp = now + LOGIN_TTL_MS;
    this.codes.set(hashKey(code), { exp, scope });
    return { code, expires_at: new Date(exp).toISOString() };
  }

  /** Consumes a login code (single use, even when refused); returns a new session of `scope`, or undefined. */
  redeem(code: string, now = Date.now(), scope: AuthScope = "ui"): string | undefined {
    const key = hashKey(code);
    const entry = this.codes.get(key);
    if (entry === undefined) return undefined;
    this.codes.delete(key);
    if (entry.exp <= now || entry.scope !== scope) return undefined;
    const session = randomBytes(32).toString("base64url");
    this.sessions.set(hashKey(session), { since: now, scope });
    while (this.sessions.size > MAX_UI_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    return session;
  }

  /** A stable key of the UI session the cookie carries (not the secret itself), or null. */
  sessionKey(cookieHeader: string | undefined): string | null {
    const value = parseCookies(cookieHeader).get(this.cookieNameOf("ui"));
    return value === undefined ? null : hashKey(value);
  }

  checkCookie(cookieHeader: string | undefined, now = Date.now(), scope: AuthScope = "ui"): boolean {
    const value = parseCookies(cookieHeader).get(this.cookieNameOf(scope));
    if (value === undefined) return false;
    const key = hashKey(value);
    const session = this.sessions.get(key);
    if (session === undefined || session.scope !== scope) return false;
    if (now - session.since >= UI_SESSION_TTL_MS) {
      this.sessions.delete(key);
      return false;
    }
    return true;
  }

  setCookie(session: string, scope: AuthScope = "ui"): string {
    return `${this.cookieNameOf(scope)}=${session}; HttpOnly; SameSite=Strict; Path=/`;
  }
}
