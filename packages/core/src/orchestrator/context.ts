import { AlpineError, toAlpineError } from "../errors.ts";
import type { FaultStep } from "../faults.ts";
import { type SandboxState, transition } from "../lifecycle.ts";
import { noteEvent } from "../records.ts";
import type { SandboxRecord, StoredEvent } from "../schemas.ts";
import type { OrchestratorDeps } from "./types.ts";

/**
 * What every operation does the same way: the time, fault points, best-effort steps, and record
 * writes (state changes only through the lifecycle table, every write compare-and-swapped on the
 * record's version).
 */

export function nowIso(deps: OrchestratorDeps): string {
  return new Date(deps.clock.now()).toISOString();
}

/** Announces a named step (see faults.ts); a no-op unless a test build wired fault points. */
export async function reach(deps: OrchestratorDeps, step: FaultStep): Promise<void> {
  if (deps.faults) await deps.faults.reached(step);
}

/**
 * A catch handler for a best-effort step: the failure is told to the logger (if any) and
 * otherwise ignored. `level` warn for what may leave something behind.
 */
export function ignoreFailure(
  deps: OrchestratorDeps,
  step: string,
  level: "debug" | "warn" = "debug",
): (err: unknown) => void {
  return (err) => {
    const error = toAlpineError(err);
    deps.log?.[level](`${step} failed; going on`, { reason: error.reason, error: error.message });
  };
}

async function save(
  deps: OrchestratorDeps,
  prev: SandboxRecord,
  next: SandboxRecord,
  events: StoredEvent[],
): Promise<void> {
  if (next.state !== prev.state && events.length === 0) {
    throw new AlpineError("internal_error", "state changed without a lifecycle event");
  }
  if (!(await deps.store.put(next, prev.version, events))) {
    throw new AlpineError(
      "operation_in_progress",
      `sandbox '${prev.name}' was changed by another command`,
      {},
    );
  }
}

/** Applies a state change through the lifecycle table and persists it with its event. */
export async function move(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  to: SandboxState,
  operationId: string,
  reason: string,
  patch: Partial<SandboxRecord> = {},
): Promise<SandboxRecord> {
  const at = nowIso(deps);
  const event = transition(record, to, { at, operation_id: operationId, reason });
  const next: SandboxRecord = { ...record, ...patch, state: to, updated_at: at, version: record.version + 1 };
  await save(deps, record, next, [{ ...event, name: record.name, kind: "transition" }]);
  return next;
}

/** Persists a change that is not a state change (runtime handle, task, agent…). */
export async function update(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  patch: Partial<SandboxRecord>,
): Promise<SandboxRecord> {
  const next: SandboxRecord = { ...record, ...patch, updated_at: nowIso(deps), version: record.version + 1 };
  await save(deps, record, next, []);
  return next;
}

/** Appends a `note` event (something happened that is not a state change). */
export async function note(
  deps: OrchestratorDeps,
  record: Pick<SandboxRecord, "id" | "name">,
  operationId: string,
  reason: string,
  at = nowIso(deps),
): Promise<void> {
  await deps.store.appendEvents([noteEvent(record, reason, { at, operationId })]);
}

/** Stops a record's runtime, if it has one (best effort: the provider's stop is idempotent). */
export async function stopRuntime(deps: OrchestratorDeps, record: SandboxRecord): Promise<void> {
  if (!record.runtime) return;
  await deps
    .provider(record.provider)
    .stop(record.runtime.handle)
    .catch(ignoreFailure(deps, `stopping the runtime of '${record.name}'`, "warn"));
}
