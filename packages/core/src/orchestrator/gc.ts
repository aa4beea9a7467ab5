import { toAlpineError } from "../errors.ts";
import { silentProgress } from "../ports.ts";
import { PROVIDER_KINDS } from "../provider-kinds.ts";
import { gcVerdict } from "./decisions/gc.ts";
import { teardownBlockers } from "./decisions/safety.ts";
import { activeLease, probe } from "./reading.ts";
import { teardown } from "./teardown.ts";
import type { GcResult, OrchestratorDeps } from "./types.ts";

/** `gc`: removes completed sandboxes whose work is saved, after the retention period (docs/durability.md). */
export async function gc(deps: OrchestratorDeps, opts: { dryRun: boolean }): Promise<GcResult> {
  const tornDown: string[] = [];
  const kept: { name: string; reason: string }[] = [];
  for (const record of await deps.store.list()) {
    const verdict = gcVerdict(record, deps.clock.now(), deps.config);
    if (verdict.kind === "skip") continue;
    if (verdict.kind === "keep") {
      kept.push({ name: record.name, reason: verdict.reason });
      continue;
    }
    const blockers = teardownBlockers(
      record,
      await probe(deps, record),
      await activeLease(deps, record.name),
    );
    if (blockers.length > 0) {
      kept.push({ name: record.name, reason: blockers.join(", ") });
      continue;
    }
    if (opts.dryRun) {
      tornDown.push(record.name);
      continue;
    }
    try {
      await teardown(deps, record.name, { force: false }, silentProgress);
      tornDown.push(record.name);
    } catch (err) {
      kept.push({ name: record.name, reason: toAlpineError(err).reason });
    }
  }
  if (!opts.dryRun) {
    // Runtimes a provider keeps outside any sandbox (warm pools) are tidied here too.
    for (const kind of PROVIDER_KINDS) {
      try {
        await deps.provider(kind).collect?.();
      } catch (err) {
        // A provider that is not available here has nothing to collect.
        deps.log?.debug(`collecting the ${kind} provider's runtimes failed; going on`, {
          error: toAlpineError(err).message,
        });
      }
    }
  }
  return { torn_down: tornDown, kept };
}
