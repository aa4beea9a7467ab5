import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * A sandbox's bearer token for sandboxd lives in `<dir>/token` on the
 * launching machine (mode 0600), whatever runs the sandbox: sandboxd gets it
 * over stdin at each start, and commands read it to reach sandboxd.
 */
const tokenPath = (dir: string) => join(dir, "token");

/** Writes a new random token unless the dir already has one (a restart keeps its token). */
export function ensureToken(dir: string): void {
  const token = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  try {
    writeFileSync(tokenPath(dir), token, { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}

/** The dir's token; throws when it has none (a runtime is never started without one). */
export function readToken(dir: string): string {
  return readFileSync(tokenPath(dir), "utf8");
}

/** The dir's token, or null when there is none (a destroyed sandbox: nothing to reach). */
export function tokenIfAny(dir: string): string | null {
  try {
    return readToken(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}
