import { AlpineError, toAlpineError } from "../errors.ts";
import { staleReason } from "../leases.ts";
import { validateName } from "../names.ts";
import type { RuntimeEndpoint } from "../ports.ts";
import type { Lease, SandboxRecord } from "../schemas.ts";
import { nowIso } from "./context.ts";
import { type WorkOnRepo, workOf } from "./decisions/overlaps.ts";
import { answersProbe, keptForInspection, LIVE_STATES } from "./decisions/safety.ts";
import type { OrchestratorDeps, Probe, SandboxdApi } from "./types.ts";

/** Reading a sandbox: its record, its lease, and asking its sandboxd how it is. */

export async function getRecord(deps: OrchestratorDeps, name: string): Promise<SandboxRecord> {
  validateName(name);
  const record = await deps.store.get(name);
  if (!record) throw new AlpineError("sandbox_not_found", `sandbox '${name}' not found`, { name });
  return record;
}

/** The lease of a running operation, or null when there is none or it is stale. */
/** The work of every sandbox overlap warnings compare against (the deps' `peers`, else the store's records). */
export async function peerWork(deps: OrchestratorDeps): Promise<WorkOnRepo[]> {
  return deps.peers ? deps.peers() : (await deps.store.list()).map(workOf);
}

export async function activeLease(deps: OrchestratorDeps, name: string): Promise<Lease | null> {
  const lease = await deps.store.getLease(name);
  if (!lease || staleReason(lease, deps.clock.now(), deps.host)) return null;
  return lease;
}

function endpointOf(deps: OrchestratorDeps, record: SandboxRecord): Promise<RuntimeEndpoint | null> {
  if (!record.runtime) return Promise.resolve(null);
  return deps.provider(record.provider).endpoint(record.runtime.handle);
}

function unavailable(record: SandboxRecord, details: Record<string, unknown> = {}): AlpineError {
  return new AlpineError("sandbox_unavailable", `sandbox '${record.name}' has no running runtime`, details);
}

/**
 * Asks the sandbox's sandboxd how it is. Never throws. `timeoutMs` bounds the request (`status`
 * uses a short one; decisions such as launch's reuse keep the client's default, so a slow sandbox
 * is not mistaken for a dead one).
 */
export async function probe(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  opts: { timeoutMs?: number } = {},
): Promise<Probe> {
  const at = nowIso(deps);
  if (!answersProbe(record)) {
    return {
      state: "not_running",
      at: null,
      status: null,
      error: null,
      kept_workspace: await keptWorkspace(deps, record),
    };
  }
  try {
    const endpoint = await endpointOf(deps, record);
    if (!endpoint) throw unavailable(record);
    const status = await deps.connect(endpoint, opts).status();
    return { state: "ok", at, status, error: null };
  } catch (err) {
    const error = toAlpineError(err);
    // A sandbox kept for inspection that stopped answering still has its workspace on disk.
    if (keptForInspection(record))
      return {
        state: "unavailable",
        at,
        status: null,
        error,
        kept_workspace: await keptWorkspace(deps, record),
      };
    return { state: "unavailable", at, status: null, error };
  }
}

/**
 * Whether the provider kept the workspace of a sandbox in `error` (false for any other state).
 * Unknown is reported as "no workspace kept": the probe never throws, and the teardown that reads
 * kept_workspace then needs no --force for a runtime it cannot inspect.
 */
async function keptWorkspace(deps: OrchestratorDeps, record: SandboxRecord): Promise<boolean> {
  if (record.state !== "error" || record.runtime === null) return false;
  return deps
    .provider(record.provider)
    .hasWorkspace(record.runtime.handle)
    .catch((err: unknown) => {
      deps.log?.debug(`asking whether '${record.name}' kept its workspace failed`, {
        error: toAlpineError(err).message,
      });
      return false;
    });
}

/** A connection to a live sandbox (or one kept for inspection after a failed setup), or sandbox_not_running / sandbox_unavailable. */
export async function connectTo(deps: OrchestratorDeps, record: SandboxRecord): Promise<SandboxdApi> {
  if (!LIVE_STATES.includes(record.state) && !keptForInspection(record)) {
    throw new AlpineError(
      "sandbox_not_running",
      `sandbox '${record.name}' is ${record.state}; run \`alpine launch ${record.name}\` to start it`,
      { state: record.state },
    );
  }
  const endpoint = await endpointOf(deps, record);
  if (!endpoint) throw unavailable(record, { name: record.name });
  return deps.connect(endpoint);
}
