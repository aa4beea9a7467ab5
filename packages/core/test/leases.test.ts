import { describe, expect, it } from "vitest";
import { acquireLease, LEASE_RENEW_MS, LEASE_TTL_MS, type Lease } from "../src/index.ts";
import { launched, world } from "./fakes/world.ts";

const record = { id: "sbx_1", name: "box" };

function leaseOf(patch: Partial<Lease>, now: number): Lease {
  return {
    id: "op_old:0",
    type: "launch",
    holder: "there:7",
    host: "there",
    pid: 7,
    operation_id: "op_old",
    acquired_at: new Date(now).toISOString(),
    expires_at: new Date(now + LEASE_TTL_MS).toISOString(),
    ...patch,
  };
}

describe("leases", () => {
  it("a live holder keeps its lease: operation_in_progress names it", async () => {
    const w = world();
    w.store.leases.set("box", leaseOf({}, w.clock.now()));
    await expect(acquireLease(w.deps, record, "task", "op_1")).rejects.toMatchObject({
      reason: "operation_in_progress",
      details: { operation: "launch", holder: "there:7", operation_id: "op_old" },
    });
  });

  it("a holder on this host that is still alive keeps its lease", async () => {
    const w = world();
    w.host.alive.add(42);
    w.store.leases.set("box", leaseOf({ host: "here", pid: 42, holder: "here:42" }, w.clock.now()));
    await expect(acquireLease(w.deps, record, "task", "op_1")).rejects.toMatchObject({
      reason: "operation_in_progress",
    });
  });

  it.each([
    ["expired", { expires_at: "2025-12-31T23:59:59.000Z" }, "expired"],
    [
      "its holder on this host is gone",
      { host: "here", pid: 42, holder: "here:42" },
      "holder pid 42 is gone",
    ],
  ] as [string, Partial<Lease>, string][])(
    "is taken over when %s, and the takeover is logged",
    async (_, patch, why) => {
      const w = world();
      w.store.leases.set("box", leaseOf(patch, w.clock.now()));
      const held = await acquireLease(w.deps, record, "teardown", "op_1");
      expect(held.lease).toMatchObject({ type: "teardown", holder: "here:100", operation_id: "op_1" });
      expect(w.store.notes("box", "lease_takeover")).toEqual([
        `took over the launch lease of ${patch.holder ?? "there:7"} (${why})`,
      ]);
      await held.release();
      expect(w.store.leases.size).toBe(0);
    },
  );

  it("is renewed while held, and release stops the renewal", async () => {
    const w = world();
    const held = await acquireLease(w.deps, record, "launch", "op_1");
    const first = Date.parse(held.lease.expires_at);
    w.clock.advance(LEASE_RENEW_MS);
    await Promise.resolve();
    await held.release();
    expect(Date.parse(held.lease.expires_at)).toBe(first + LEASE_RENEW_MS);
    expect(w.clock.activeTimers).toBe(0);
  });

  it("a failed renewal is logged and the next one tries again", async () => {
    const w = world();
    const held = await acquireLease(w.deps, record, "launch", "op_1");
    const cas = w.store.compareAndSwapLease.bind(w.store);
    let failures = 1;
    w.store.compareAndSwapLease = async (...args) => {
      if (failures-- > 0) throw new Error("database is locked");
      return cas(...args);
    };
    w.clock.advance(LEASE_RENEW_MS);
    w.clock.advance(LEASE_RENEW_MS);
    await held.release();
    expect(w.logger.messages("warn")).toEqual([
      `renewing the lease of 'box' failed; trying again in ${LEASE_RENEW_MS} ms`,
    ]);
    expect(Date.parse(held.lease.expires_at)).toBe(w.clock.now() + LEASE_TTL_MS);
    expect(w.store.leases.size).toBe(0);
  });

  it("a release after a takeover leaves the successor's lease alone", async () => {
    const w = world();
    const held = await acquireLease(w.deps, record, "launch", "op_1");
    const successor = leaseOf({ id: "op_2:0" }, w.clock.now());
    w.store.leases.set("box", successor);
    await held.release();
    expect(w.store.leases.get("box")).toEqual(successor);
  });

  it("gives up after losing the race three times", async () => {
    const w = world();
    w.store.compareAndSwapLease = async () => false;
    await expect(acquireLease(w.deps, record, "launch", "op_1")).rejects.toMatchObject({
      reason: "operation_in_progress",
      message: "sandbox 'box' is busy; retry shortly",
    });
  });

  it("an operation on a sandbox another live command holds is operation_in_progress", async () => {
    const w = world();
    await launched(w);
    w.store.leases.set("box", leaseOf({}, w.clock.now()));
    await expect(w.orchestrator.task("box", "go")).rejects.toMatchObject({ reason: "operation_in_progress" });
    await expect(w.orchestrator.teardown("box", { force: true })).rejects.toMatchObject({
      reason: "operation_in_progress",
    });
    expect(await w.orchestrator.activeLease("box")).toMatchObject({ holder: "there:7" });
    expect(await w.orchestrator.lease("box")).toMatchObject({ holder: "there:7" });
    w.clock.advance(LEASE_TTL_MS);
    expect(await w.orchestrator.activeLease("box")).toBeNull();
  });
});
