import { AlpineError } from "../errors.ts";
import { acquireLease, type HeldLease, type OperationType } from "../leases.ts";
import type { SandboxRecord } from "../schemas.ts";
import { ignoreFailure, move, note, stopRuntime, update } from "./context.ts";
import { unverifiedCheckpoints } from "./decisions/checkpoints.ts";
import { settlementOf, TRANSITIONAL_STATES } from "./decisions/settlement.ts";
import { activeLease, getRecord } from "./reading.ts";
import type { OrchestratorDeps } from "./types.ts";

/**
 * Holding a sandbox's lease, and settling what a command that died mid-way left behind
 * (docs/architecture.md, "Leases"; the rules are in decisions/settlement.ts).
 */

/** Runs fn holding the sandbox's persisted lease, after settling an interrupted operation. */
export async function withLease<T>(
  deps: OrchestratorDeps,
  record: Pick<SandboxRecord, "id" | "name">,
  type: OperationType,
  fn: (op: { id: string; lease: HeldLease }) => Promise<T>,
  operationId = deps.ids.operationId(),
): Promise<T> {
  const lease = await acquireLease(deps, record, type, operationId);
  try {
    await settleInterrupted(deps, record.name, operationId);
    return await fn({ id: operationId, lease });
  } finally {
    await lease.release();
  }
}

/**
 * Called holding the lease: a sandbox still in provisioning, saving or tearing_down was left there
 * by an operation whose process died. Settles it, so every operation and `status` start from the
 * truth.
 */
async function settleInterrupted(deps: OrchestratorDeps, name: string, operationId: string): Promise<void> {
  const record = await deps.store.get(name);
  if (!record || !TRANSITIONAL_STATES.includes(record.state)) return;
  const settlement = settlementOf(record, record.state === "saving" ? await deps.store.events(name) : []);
  switch (settlement.kind) {
    case "fail_launch":
      await stopRuntime(deps, record);
      await move(deps, record, settlement.to, operationId, settlement.reason, {
        error: settlement.error.toJSON(),
      });
      return;
    case "undo_saving":
      await discardUnverifiedCheckpoints(deps, record);
      await move(
        deps,
        record,
        settlement.to,
        operationId,
        settlement.reason,
        settlement.error ? { error: settlement.error.toJSON() } : {},
      );
      return;
    case "hold_teardown":
      await stopRuntime(deps, record);
      if (settlement.mark) {
        await update(deps, record, { error: settlement.mark.error.toJSON() });
        await note(deps, record, operationId, settlement.mark.note);
      }
      return;
    case "none":
      return;
  }
}

/** Deletes stored checkpoints newer than the recorded verified one (an interrupted checkpoint's), then prunes. */
async function discardUnverifiedCheckpoints(deps: OrchestratorDeps, record: SandboxRecord): Promise<void> {
  const store = deps.checkpoints;
  const verified = record.checkpoint?.verified ? record.checkpoint : null;
  const stored = [];
  for (const id of await store.list(record.id)) {
    // An unreadable manifest is a damaged checkpoint: discarded like one without a manifest.
    const manifest = await store.getManifest(record.id, id).catch((err: unknown) => {
      ignoreFailure(deps, `reading the manifest of checkpoint ${id}`)(err);
      return null;
    });
    stored.push({ id, manifest });
  }
  for (const id of unverifiedCheckpoints(stored, verified)) await store.delete(record.id, id);
  await store.prune?.(record.id);
}

/**
 * Settles a sandbox left in provisioning, saving or tearing_down by a command that died, unless a
 * live operation holds it. `status` calls this so it reports the truth; every mutating operation
 * does it anyway once it holds the lease.
 */
export async function settle(deps: OrchestratorDeps, record: SandboxRecord): Promise<SandboxRecord> {
  if (!TRANSITIONAL_STATES.includes(record.state) || (await activeLease(deps, record.name))) return record;
  try {
    return await withLease(deps, record, "reconcile", () => getRecord(deps, record.name));
  } catch (err) {
    if (isBusy(err)) return record;
    throw err;
  }
}

/** Another command holds the sandbox (or wrote it first). */
export function isBusy(err: unknown): boolean {
  return err instanceof AlpineError && err.reason === "operation_in_progress";
}
