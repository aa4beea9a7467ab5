import { AlpineError, toAlpineError } from "./errors.ts";
import type { Clock, HostIdentity, Ids, Logger, StateStore } from "./ports.ts";
import type { Lease, SandboxRecord } from "./schemas.ts";

export const LEASE_TTL_MS = 30_000;
export const LEASE_RENEW_MS = 10_000;

export type OperationType =
  | "launch"
  | "task"
  | "checkpoint"
  | "export"
  | "teardown"
  | "gc"
  | "reconcile"
  | "suspend";

export interface HeldLease {
  lease: Lease;
  /** Stops renewal and releases the lease (compare-and-swap, so a lease taken over is left alone). */
  release(): Promise<void>;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Why a lease may be taken over, or null when its holder still owns it. */
export function staleReason(lease: Lease, now: number, self: HostIdentity): string | null {
  if (Date.parse(lease.expires_at) <= now) return "expired";
  if (lease.host === self.host && lease.pid !== self.pid && !self.isProcessAlive(lease.pid)) {
    return `holder pid ${lease.pid} is gone`;
  }
  return null;
}

/**
 * Takes the sandbox's lease by compare-and-swap, persists it for the whole
 * operation and renews it; a lease whose holder died is taken over and the
 * takeover is logged as an event (docs/architecture.md, "Leases").
 */
export async function acquireLease(
  deps: { store: StateStore; clock: Clock; host: HostIdentity; ids: Ids; log?: Logger },
  record: Pick<SandboxRecord, "id" | "name">,
  type: OperationType,
  operationId: string,
): Promise<HeldLease> {
  const { store, clock, host } = deps;
  for (let attempt = 0; attempt < 3; attempt++) {
    const current = await store.getLease(record.name);
    const now = clock.now();
    let takeover: string | null = null;
    if (current) {
      takeover = staleReason(current, now, host);
      if (!takeover) {
        throw new AlpineError(
          "operation_in_progress",
          `sandbox '${record.name}' is busy with ${current.type} (${current.holder}, since ${current.acquired_at})`,
          {
            operation: current.type,
            holder: current.holder,
            operation_id: current.operation_id,
            since: current.acquired_at,
          },
        );
      }
    }
    const lease: Lease = {
      id: `${operationId}:${attempt}`,
      type,
      holder: `${host.host}:${host.pid}`,
      host: host.host,
      pid: host.pid,
      operation_id: operationId,
      acquired_at: iso(now),
      expires_at: iso(now + LEASE_TTL_MS),
    };
    if (!(await store.compareAndSwapLease(record.name, current?.id ?? null, lease))) continue;
    if (current && takeover) {
      await store.appendEvents([
        {
          sandbox_id: record.id,
          name: record.name,
          at: iso(now),
          kind: "lease_takeover",
          from: null,
          to: null,
          operation_id: operationId,
          reason: `took over the ${current.type} lease of ${current.holder} (${takeover})`,
        },
      ]);
    }
    return hold(deps, record.name, lease);
  }
  throw new AlpineError("operation_in_progress", `sandbox '${record.name}' is busy; retry shortly`, {});
}

function hold(
  deps: { store: StateStore; clock: Clock; log?: Logger },
  name: string,
  initial: Lease,
): HeldLease {
  let lease = initial;
  // Renewals run one after the other; each one's failure is its own (the next one tries again),
  // so this chain never rejects.
  let renewing: Promise<void> = Promise.resolve();
  const renew = async () => {
    try {
      const next = { ...lease, expires_at: iso(deps.clock.now() + LEASE_TTL_MS) };
      if (await deps.store.compareAndSwapLease(name, lease.id, next)) lease = next;
    } catch (err) {
      deps.log?.warn(`renewing the lease of '${name}' failed; trying again in ${LEASE_RENEW_MS} ms`, {
        error: toAlpineError(err).message,
      });
    }
  };
  const stop = deps.clock.every(LEASE_RENEW_MS, () => {
    renewing = renewing.then(renew);
  });
  return {
    get lease() {
      return lease;
    },
    async release() {
      stop();
      await renewing;
      await deps.store.compareAndSwapLease(name, lease.id, null);
    },
  };
}
