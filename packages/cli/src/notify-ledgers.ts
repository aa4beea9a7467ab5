import { readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { SandboxRecord } from "@alpine/core";

/**
 * sandboxd's notification ledgers of local sandboxes, `$ALPINE_HOME/notify/<sandbox id>.json`
 * (docs/config.md, `notify`): kept past a teardown so a resumed sandbox does not notify again,
 * and pruned by `alpine gc` once the sandbox is destroyed (or gone from the state) and the ledger
 * was last written longer ago than the prepared environments' retention.
 */
export const NOTIFY_LEDGER_RETENTION_DAYS = 14;

export function notifyLedgerDir(home: string): string {
  return join(home, "notify");
}

/** Ids of the ledgers `alpine gc` removes (none of a sandbox that is not destroyed). */
export async function staleNotifyLedgers(
  home: string,
  /** The state's records, read only when there are ledgers (a home without any opens no database). */
  records: () => Promise<readonly Pick<SandboxRecord, "id" | "state">[]>,
  now = Date.now(),
): Promise<string[]> {
  const dir = notifyLedgerDir(home);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return []; // no ledger was ever written
  }
  if (names.length === 0) return [];
  const kept = new Set((await records()).filter((r) => r.state !== "destroyed").map((r) => r.id));
  const limit = now - NOTIFY_LEDGER_RETENTION_DAYS * 86_400_000;
  const stale: string[] = [];
  for (const name of names) {
    // A ledger, or the temp file of a save that died half-way (sandboxd writes through a rename).
    const m = /^(.+?)\.json(?:\.\d+\.tmp)?$/.exec(name);
    if (!m || kept.has(m[1]!)) continue;
    try {
      if (statSync(join(dir, name)).mtimeMs < limit) stale.push(name);
    } catch {
      // Removed meanwhile (another gc): nothing to prune.
    }
  }
  return stale.sort();
}

/** Removes the named ledger files; returns the sandbox ids whose ledger went. */
export function removeNotifyLedgers(home: string, files: readonly string[]): string[] {
  for (const f of files) rmSync(join(notifyLedgerDir(home), f), { force: true });
  return ledgerIds(files);
}

/** The sandbox ids of ledger file names. */
export function ledgerIds(files: readonly string[]): string[] {
  return [...new Set(files.map((f) => f.replace(/\.json(?:\.\d+\.tmp)?$/, "")))];
}
