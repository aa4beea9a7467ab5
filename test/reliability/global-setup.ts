import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "..", "..");
const RESULTS = join(ROOT, "test-results", "reliability");

/**
 * After a vitest run in which any reliability test recorded rows, docs/reliability.md is
 * generated again from them (scripts/gen-reliability.mjs). Runs that did not touch the
 * reliability suite leave the doc alone.
 */
export default function setup(): () => void {
  const started = Date.now();
  return () => {
    if (!existsSync(RESULTS)) return;
    const fresh = readdirSync(RESULTS).some(
      (f) => f.endsWith(".jsonl") && statSync(join(RESULTS, f)).mtimeMs >= started,
    );
    if (!fresh) return;
    execFileSync(process.execPath, [join(ROOT, "scripts", "gen-reliability.mjs")], { stdio: "inherit" });
  };
}
