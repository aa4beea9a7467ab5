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
export class Auth {
  private readonly codes = new Map<string, number>();
  private readonly sessions = new Map<string, number>();
  readonly cookieName: string;

  constructor(
    private readonly token: string,
    sandboxId: string,
  ) {
    this.cookieName = `alpine_session_${sandboxId.replace(/[^A-Za-z0-9_-]/g, "").slice(0, 40)}`;
  }

  checkBearer(header: string | undefined): boolean {
    const given = bearer(header);
    // Compare even when absent, so timing says nothing.
    return safeEqual(given ?? "", this.token) && given !== undefined;
  }

  newLoginCode(now = Date.now()): { code: string; expires_at: string } {
    for (const [c, exp] of this.codes) if (exp <= now) this.codes.delete(c);
    const code = randomBytes(24).toString("base64url");
    const exp = now + LOGIN_TTL_MS;
    this.codes.set(hashKey(code), exp);
    return { code, expires_at: new Date(exp).toISOString() };
  }

  /** Consumes a login code (single use); returns a new UI session id, or undefined. */
  redeem(code: string, now = Date.now()): string | undefined {
    const key = hashKey(code);
    const exp = this.codes.get(key);
    if (exp === undefined) return undefined;
    this.codes.delete(key);
    if (exp <= now) return undefined;
    const session = randomBytes(32).toString("base64url");
    this.sessions.set(hashKey(session), now);
    while (this.sessions.size > MAX_UI_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    return session;
  }

  /** A stable key of the UI session the cookie carries (not the secret itself), or null. */
  sessionKey(cookieHeader: string | undefined): string | null {
    const value = parseCookies(cookieHeader).get(this.cookieName);
    return value === undefined ? null : hashKey(value);
  }

  checkCookie(cookieHeader: string | undefined, now = Date.now()): boolean {
    const value = parseCookies(cookieHeader).get(this.cookieName);
    if (value === undefined) return false;
    const key = hashKey(value);
    const since = this.sessions.get(key);
    if (since === undefined) return false;
    if (now - since >= UI_SESSION_TTL_MS) {
      this.sessions.delete(key);
      return false;
    }
    return true;
  }

  setCookie(session: string): string {
    return `${this.cookieName}=${session}; HttpOnly; SameSite=Strict; Path=/`;
  }
}
