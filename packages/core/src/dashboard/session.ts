/**
 * The dashboard's sign-in, without `node:` imports (Web Crypto only), so the local server
 * (`alpine dashboard`) and the control plane's Worker share it.
 *
 * - A one-time login code (printed in a link, valid 60 s, usable once, even when refused) is
 *   traded for a session: a random value in an HttpOnly, SameSite=Strict cookie. This is the
 *   pattern of sandboxd's web-UI login (packages/sandboxd/src/auth.ts).
 * - Codes and sessions are kept by their SHA-256, so a lookup leaks nothing usable about them.
 * - A CSRF token is the HMAC of the session cookie's value under a per-server key: only a page
 *   that could read the cookie's session (our own, served to the signed-in browser) can show it.
 */

import { hmacSha256 } from "../hmac.ts";

export const DASHBOARD_COOKIE = "alpine_dashboard";
export const LOGIN_CODE_TTL_MS = 60_000;
export const DASHBOARD_SESSION_TTL_MS = 12 * 3600_000;
const MAX_SESSIONS = 100;

export function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function randomToken(bytes = 32): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function sha256(text: string): Promise<string> {
  return toBase64Url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));
}

export async function hmac(key: string, text: string): Promise<string> {
  return toBase64Url(await hmacSha256(key, text));
}

/** Constant-time comparison of two secrets of any lengths (their digests are compared). */
export async function sameSecret(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([sha256(a), sha256(b)]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x.charCodeAt(i) ^ y.charCodeAt(i);
  return diff === 0 && x.length === y.length;
}

export function cookieValue(cookieHeader: string | null, name: string): string | null {
  for (const part of (cookieHeader ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export function sessionCookie(value: string, secure: boolean, maxAgeMs = DASHBOARD_SESSION_TTL_MS): string {
  return `${DASHBOARD_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor(maxAgeMs / 1000)}${secure ? "; Secure" : ""}`;
}

/** One-time login codes and the sessions they open, in memory (one dashboard process). */
export class DashboardLogins {
  private readonly codes = new Map<string, number>();
  private readonly sessions = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  async newCode(): Promise<{ code: string; expires_at: string }> {
    const now = this.now();
    for (const [c, exp] of this.codes) if (exp <= now) this.codes.delete(c);
    const code = randomToken(24);
    const exp = now + LOGIN_CODE_TTL_MS;
    this.codes.set(await sha256(code), exp);
    return { code, expires_at: new Date(exp).toISOString() };
  }

  /** Consumes the code (once, even when it has expired); a new session's cookie value, or null. */
  async redeem(code: string): Promise<string | null> {
    const key = await sha256(code);
    const exp = this.codes.get(key);
    if (exp === undefined) return null;
    this.codes.delete(key);
    if (exp <= this.now()) return null;
    const session = randomToken(32);
    this.sessions.set(await sha256(session), this.now());
    while (this.sessions.size > MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
    return session;
  }

  /** Whether the request's cookie carries a live session. */
  async check(cookieHeader: string | null): Promise<boolean> {
    const value = cookieValue(cookieHeader, DASHBOARD_COOKIE);
    if (!value) return false;
    const key = await sha256(value);
    const since = this.sessions.get(key);
    if (since === undefined) return false;
    if (this.now() - since >= DASHBOARD_SESSION_TTL_MS) {
      this.sessions.delete(key);
      return false;
    }
    return true;
  }
}
