import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * The control-plane CLI token of `alpine login` (docs/cloudflare.md, "People and roles"): one
 * file per control plane under `$ALPINE_HOME/control-plane/`, mode 0600 in a 0700 directory. It
 * is used as the bearer token instead of the shared ALPINE_CONTROL_PLANE_TOKEN while it lasts.
 */
export interface StoredSession {
  url: string;
  token: string;
  expires_at: string;
  principal: { id: string; login: string; admin: boolean; via: string };
}

export function sessionFile(home: string, url: string): string {
  const key = createHash("sha256").update(url.replace(/\/+$/, "")).digest("hex").slice(0, 16);
  return join(home, "control-plane", `${key}.json`);
}

/** The stored session for `url` while it has not expired; null otherwise (or unreadable). */
export function readSession(home: string, url: string, now = Date.now()): StoredSession | null {
  let stored: StoredSession;
  try {
    stored = JSON.parse(readFileSync(sessionFile(home, url), "utf8")) as StoredSession;
  } catch {
    // No login for this control plane (or a damaged file): the shared token, if any, applies.
    return null;
  }
  if (typeof stored.token !== "string" || !(Date.parse(stored.expires_at) > now)) return null;
  return stored;
}

export function writeSession(home: string, session: StoredSession): string {
  const file = sessionFile(home, session.url);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600 });
  // An existing file keeps its mode through writeFileSync: make sure it is the owner's alone.
  chmodSync(file, 0o600);
  return file;
}

export function removeSession(home: string, url: string): void {
  rmSync(sessionFile(home, url), { force: true });
}
