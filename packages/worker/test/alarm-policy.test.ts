import { describe, expect, it } from "vitest";
import {
  type AlarmFacts,
  decideAfterProbe,
  KEEP_ALIVE_MS,
  nextAlarmIn,
  planAlarm,
} from "../src/alarm-policy.ts";

const NOW = Date.parse("2026-01-02T00:00:00.000Z");
const MIN = 60_000;

function facts(
  over: Partial<Omit<AlarmFacts, "record">> & { record?: Partial<AlarmFacts["record"]> } = {},
): AlarmFacts {
  return {
    now: NOW,
    lastRequestAt: 0,
    intervalMs: MIN,
    inactivityMs: 10 * MIN,
    sandbox: { auto_teardown: true, completed_retention_minutes: 30 },
    ...over,
    record: {
      state: "running",
      agent: "idle",
      last_activity: new Date(NOW - MIN).toISOString(),
      updated_at: new Date(NOW - MIN).toISOString(),
      ...over.record,
    },
  };
}

describe("the alarm's policy", () => {
  it("stops watching a sandbox that is not live", () => {
    for (const state of ["destroyed", "error", "tearing_down", "provisioning", "new"] as const) {
      expect(planAlarm(facts({ record: { state } }))).toEqual({ kind: "stop" });
    }
  });

  it("probes even a quiet running sandbox well inside the container's timeout (a rollout's SIGTERM shows only there)", () => {
    expect(planAlarm(facts())).toEqual({ kind: "probe", idleForMs: MIN, nearTimeout: false });
  });

  it("collects a held exit checkpoint before anything else: busy agent, open UI, retention", () => {
    const done = facts({
      record: { state: "completed", updated_at: new Date(NOW - 60 * MIN).toISOString() },
      uiConnectionsOpen: 1,
    });
    const plan = planAlarm(done);
    if (plan.kind !== "probe") throw new Error("expected a probe");
    const probed = { record: { ...done.record, task: null }, reachable: true, agentBusy: true };
    expect(decideAfterProbe(done, plan, { ...probed, exitCheckpointHeld: true })).toEqual({
      collectExitCheckpoint: true,
      renew: false,
      teardown: null,
    });
    expect(decideAfterProbe(done, plan, probed).collectExitCheckpoint).toBeFalsy();
  });

  it("probes a busy agent, a saving or completed sandbox, and one near the timeout", () => {
    expect(planAlarm(facts({ record: { agent: "busy" } })).kind).toBe("probe");
    expect(planAlarm(facts({ record: { agent: "retry" } })).kind).toBe("probe");
    expect(planAlarm(facts({ record: { state: "saving" } })).kind).toBe("probe");
    expect(planAlarm(facts({ record: { state: "completed" } }))).toMatchObject({
      kind: "probe",
      nearTimeout: false,
    });
    // 8 of 10 minutes idle: inside the two-interval margin.
    const idle = facts({ record: { last_activity: new Date(NOW - 8 * MIN).toISOString() } });
    expect(planAlarm(idle)).toEqual({ kind: "probe", idleForMs: 8 * MIN, nearTimeout: true });
  });

  it("counts the object's own last request as activity", () => {
    const old = { last_activity: new Date(NOW - 60 * MIN).toISOString() };
    expect(planAlarm(facts({ record: old }))).toMatchObject({ nearTimeout: true });
    expect(planAlarm(facts({ record: old, lastRequestAt: NOW - MIN }))).toMatchObject({ nearTimeout: false });
  });

  it("counts an open web UI connection as activity: no idle save-and-stop, no auto-teardown while it is open", () => {
    const old = { last_activity: new Date(NOW - 60 * MIN).toISOString() };
    expect(planAlarm(facts({ record: old, uiConnectionsOpen: 1 }))).toMatchObject({ nearTimeout: false });
    const done = facts({
      record: { ...old, state: "completed", updated_at: old.last_activity },
      uiConnectionsOpen: 1,
    });
    const plan = planAlarm(done);
    if (plan.kind !== "probe") throw new Error("expected a probe");
    expect(plan.nearTimeout).toBe(false);
    const probed = { record: { ...done.record, task: null }, reachable: true, agentBusy: false };
    expect(decideAfterProbe(done, plan, probed)).toEqual({ renew: false, teardown: null });
    expect(decideAfterProbe({ ...done, uiConnectionsOpen: 0 }, plan, probed).teardown).toMatch(
      /auto-teardown/,
    );
  });

  it("renews a busy agent's container and never tears it down", () => {
    const f = facts({ record: { last_activity: new Date(NOW - 9 * MIN).toISOString() } });
    const plan = planAlarm(f);
    if (plan.kind !== "probe") throw new Error("expected a probe");
    const record = { state: "running" as const, updated_at: f.record.updated_at, task: null };
    expect(decideAfterProbe(f, plan, { record, reachable: true, agentBusy: true })).toEqual({
      renew: true,
      teardown: null,
    });
    // An idle agent near the timeout: saved and stopped.
    expect(decideAfterProbe(f, plan, { record, reachable: true, agentBusy: false }).teardown).toMatch(
      /^idle 540 s: saved and stopped before the container's inactivity timeout$/,
    );
    expect(decideAfterProbe(f, plan, { record, reachable: true, agentBusy: false }).teardownBecause).toBe(
      "idle",
    );
    // sandboxd did not answer: nothing is decided on a guess.
    expect(decideAfterProbe(f, plan, { record, reachable: false, agentBusy: false })).toEqual({
      renew: false,
      teardown: null,
    });
  });

  it("tears down a completed sandbox once its retention passed, only with auto_teardown", () => {
    const finished = (minutesAgo: number) => ({
      state: "completed" as const,
      updated_at: new Date(NOW).toISOString(),
      task: {
        prompt_summary: "x",
        session_id: "s",
        started_at: new Date(NOW - 100 * MIN).toISOString(),
        finished_at: new Date(NOW - minutesAgo * MIN).toISOString(),
      },
    });
    const f = facts({ record: { state: "completed" } });
    const plan = planAlarm(f);
    if (plan.kind !== "probe") throw new Error("expected a probe");
    const probed = (minutesAgo: number) => ({
      record: finished(minutesAgo),
      reachable: true,
      agentBusy: false,
    });
    expect(decideAfterProbe(f, plan, probed(31)).teardown).toBe("auto-teardown: completed 30 min ago");
    // The audit log calls it the alarm's gc (retention), not an idle teardown.
    expect(decideAfterProbe(f, plan, probed(31)).teardownBecause).toBe("retention");
    expect(decideAfterProbe(f, plan, probed(29)).teardown).toBeNull();
    const off = { ...f, sandbox: { auto_teardown: false, completed_retention_minutes: 30 } };
    expect(decideAfterProbe(off, plan, probed(31)).teardown).toBeNull();
  });
});

describe("the alarm's suspension (sandbox.suspend_after_minutes)", () => {
  const running = (lastActiveMinAgo: number, suspendAfter: number | undefined) => {
    const f = facts({
      inactivityMs: 60 * MIN,
      sandbox: { auto_teardown: true, completed_retention_minutes: 30, suspend_after_minutes: suspendAfter },
      record: { last_activity: new Date(NOW - lastActiveMinAgo * MIN).toISOString() },
    });
    const plan = planAlarm(f);
    if (plan.kind !== "probe") throw new Error("expected a probe");
    const record = { state: "running" as const, updated_at: f.record.updated_at, task: null };
    return { f, plan, record };
  };

  it("suspends an idle agent's sandbox once it has been idle for suspend_after_minutes", () => {
    const { f, plan, record } = running(6, 5);
    expect(decideAfterProbe(f, plan, { record, reachable: true, agentBusy: false })).toEqual({
      renew: false,
      teardown: null,
      suspend: "idle 360 s: suspended (sandbox.suspend_after_minutes)",
    });
  });

  it("never suspends a busy agent, an unreachable sandboxd, an open web UI, or before the period", () => {
    const { f, plan, record } = running(6, 5);
    expect(decideAfterProbe(f, plan, { record, reachable: true, agentBusy: true }).suspend).toBeUndefined();
    expect(decideAfterProbe(f, plan, { record, reachable: false, agentBusy: false }).suspend).toBeUndefined();
    expect(
      decideAfterProbe({ ...f, uiConnectionsOpen: 1 }, plan, { record, reachable: true, agentBusy: false })
        .suspend,
    ).toBeUndefined();
    const early = running(4, 5);
    expect(
      decideAfterProbe(early.f, early.plan, { record: early.record, reachable: true, agentBusy: false }),
    ).toEqual({ renew: false, teardown: null });
  });

  it("near the container's timeout: suspended when suspension is on, torn down when it is off (0)", () => {
    const on = running(59, 120);
    expect(
      decideAfterProbe(on.f, on.plan, { record: on.record, reachable: true, agentBusy: false }),
    ).toMatchObject({
      teardown: null,
      suspend: expect.stringMatching(/saved and suspended before the container's inactivity timeout/),
    });
    const off = running(59, 0);
    const decision = decideAfterProbe(off.f, off.plan, {
      record: off.record,
      reachable: true,
      agentBusy: false,
    });
    expect(decision.suspend).toBeUndefined();
    expect(decision.teardown).toMatch(/saved and stopped/);
  });

  it("status and logs reads (lastRequestAt) do not count as use; other requests (lastUseAt) do", () => {
    const { f, plan, record } = running(6, 5);
    const polled = { ...f, lastRequestAt: NOW - 1000, lastUseAt: NOW - 6 * MIN };
    const polledPlan = planAlarm(polled);
    if (polledPlan.kind !== "probe") throw new Error("expected a probe");
    expect(
      decideAfterProbe(polled, polledPlan, { record, reachable: true, agentBusy: false }).suspend,
    ).toMatch(/^idle 360 s: suspended/);
    const used = { ...f, lastUseAt: NOW - MIN };
    expect(
      decideAfterProbe(used, plan, { record, reachable: true, agentBusy: false }).suspend,
    ).toBeUndefined();
  });

  it("stops watching a suspended sandbox (nothing runs)", () => {
    expect(planAlarm(facts({ record: { state: "suspended" } }))).toEqual({ kind: "stop" });
  });
});

describe("nextAlarmIn", () => {
  it("every interval while live; none once nothing is live and nothing runs", () => {
    expect(nextAlarmIn({ live: true, operationsInFlight: 0, intervalMs: MIN })).toBe(MIN);
    expect(nextAlarmIn({ live: false, operationsInFlight: 0, intervalMs: MIN })).toBeNull();
  });

  it("while an operation runs, well inside the 70 s after which an object without events may be evicted", () => {
    expect(KEEP_ALIVE_MS).toBeLessThan(70_000);
    expect(nextAlarmIn({ live: false, operationsInFlight: 1, intervalMs: 10 * MIN })).toBe(KEEP_ALIVE_MS);
    expect(nextAlarmIn({ live: true, operationsInFlight: 2, intervalMs: 10 * MIN })).toBe(KEEP_ALIVE_MS);
    // A shorter interval stays the interval.
    expect(nextAlarmIn({ live: true, operationsInFlight: 1, intervalMs: 5_000 })).toBe(5_000);
  });
});
