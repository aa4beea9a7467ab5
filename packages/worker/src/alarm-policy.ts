import type { AlpineConfig, SandboxRecord } from "@alpine/core";
import { suspendAfterMs } from "@alpine/core/suspension";

/**
 * What a sandbox's alarm does, decided from facts alone (no I/O), so the
 * policy is tested without a Durable Object. While a sandbox is live the
 * alarm probes its sandboxd every time, copies the exit checkpoint of a
 * container that got SIGTERM (a rollout) before its hold runs out, keeps a
 * busy agent's container alive, saves the work of an idle
 * sandbox before its container's inactivity timeout would stop it (a
 * teardown, so the state says `destroyed` and `alpine launch` resumes it),
 * and tears down a `completed` sandbox whose retention has passed
 * (sandbox.auto_teardown, sandbox.completed_retention_minutes; see
 * docs/cloudflare.md, "The alarm").
 */

/**
 * While an operation runs, the next alarm is at most this far away. Until compatibility date
 * 2026-10-01 a Durable Object with no connected client is evicted 70-140 s after its last event
 * even while work it left in `waitUntil` is pending; an alarm is an event, so one every 30 s keeps
 * such work (a launch, a checkpoint, `task --wait` whose client went away) alive to its end.
 */
export const KEEP_ALIVE_MS = 30_000;

/** Milliseconds to the next alarm, or null for none: nothing is live and nothing runs. */
export function nextAlarmIn(facts: {
  live: boolean;
  operationsInFlight: number;
  intervalMs: number;
}): number | null {
  if (facts.operationsInFlight > 0) return Math.min(KEEP_ALIVE_MS, facts.intervalMs);
  return facts.live ? facts.intervalMs : null;
}

/** States in which a sandbox has a runtime worth watching. */
export const LIVE_STATES: ReadonlySet<SandboxRecord["state"]> = new Set(["running", "completed", "saving"]);

export interface AlarmFacts {
  /** The sandbox's record, settled, as it was before this alarm looked at sandboxd. */
  record: Pick<SandboxRecord, "state" | "agent" | "last_activity" | "updated_at">;
  now: number;
  /** When the Durable Object last served a request for this sandbox (0: not since it started). */
  lastRequestAt: number;
  /**
   * When it last served one that was use of the sandbox: any but a status or logs read (absent:
   * lastRequestAt). Suspension's idle clock: a status poller does not keep a sandbox up.
   */
  lastUseAt?: number;
  intervalMs: number;
  /** How long a container keeps running after its object went idle. */
  inactivityMs: number;
  sandbox: Pick<AlpineConfig["sandbox"], "auto_teardown" | "completed_retention_minutes"> &
    Partial<Pick<AlpineConfig["sandbox"], "suspend_after_minutes">>;
  /**
   * Web UI connections (event streams) open through the object right now: someone is watching,
   * though an open stream makes no new requests. Activity, so no idle save-and-stop and no
   * auto-teardown while one is open (absent: none).
   */
  uiConnectionsOpen?: number;
}

export type AlarmPlan =
  /** Not live: nothing to watch, and no next alarm. */
  | { kind: "stop" }
  /**
   * Look at sandboxd (probe and reconcile), then `decideAfterProbe`. Every alarm of a live
   * sandbox probes, quiet ones included: a container the platform SIGTERMed (a rollout) shows
   * only there that its sandboxd holds an exit checkpoint, and it holds it for a limited time.
   */
  | { kind: "probe"; idleForMs: number; nearTimeout: boolean };

export function planAlarm(facts: AlarmFacts): AlarmPlan {
  const { record } = facts;
  if (!LIVE_STATES.has(record.state)) return { kind: "stop" };
  const lastActive = Math.max(
    facts.uiConnectionsOpen ? facts.now : 0,
    facts.lastRequestAt,
    Date.parse(record.last_activity ?? record.updated_at) || 0,
  );
  const idleForMs = facts.now - lastActive;
  // Two alarm intervals of margin: the save must finish before the container stops.
  const nearTimeout = idleForMs >= facts.inactivityMs - 2 * facts.intervalMs;
  return { kind: "probe", idleForMs, nearTimeout };
}

export interface ProbedFacts {
  /** The record after reconciling it with the probe. */
  record: Pick<SandboxRecord, "state" | "updated_at" | "task">;
  /** sandboxd answered. */
  reachable: boolean;
  /** The agent is working (a teardown would be blocked by `agent_busy`). */
  agentBusy: boolean;
  /** sandboxd got SIGTERM and holds an exit checkpoint for the control plane to copy. */
  exitCheckpointHeld?: boolean;
}

export interface AlarmDecision {
  /**
   * Copy sandboxd's exit checkpoint and end the sandbox with it (core's collectExitCheckpoint):
   * its container is going away whatever else holds, so this comes before anything else.
   */
  collectExitCheckpoint?: boolean;
  /** Extend the container's life: the agent is working. */
  renew: boolean;
  /** Tear the sandbox down (checkpointing unsaved work first) and log why; null: keep it. */
  teardown: string | null;
  /** Why the teardown, for the audit log: `retention` (gc of a completed sandbox) or `idle`. */
  teardownBecause?: "retention" | "idle";
  /**
   * Suspend it (core's suspend: unsaved work checkpointed and verified, container stopped, state
   * `suspended`; a request resumes it) and log why; absent or null: do not.
   */
  suspend?: string | null;
}

export function decideAfterProbe(
  facts: AlarmFacts,
  plan: Extract<AlarmPlan, { kind: "probe" }>,
  probed: ProbedFacts,
): AlarmDecision {
  const { record } = probed;
  const retention = facts.sandbox.completed_retention_minutes;
  const retentionDue =
    record.state === "completed" &&
    facts.sandbox.auto_teardown &&
    facts.now >= Date.parse(record.task?.finished_at ?? record.updated_at) + retention * 60_000;
  if (probed.exitCheckpointHeld) return { collectExitCheckpoint: true, renew: false, teardown: null };
  if (probed.agentBusy || !probed.reachable || facts.uiConnectionsOpen) {
    return { renew: probed.agentBusy, teardown: null };
  }
  if (retentionDue) {
    return {
      renew: false,
      teardown: `auto-teardown: completed ${retention} min ago`,
      teardownBecause: "retention",
    };
  }
  const suspendAfter = suspendAfterMs({ suspend_after_minutes: facts.sandbox.suspend_after_minutes ?? 0 });
  const unusedForMs =
    facts.now -
    Math.max(
      facts.lastUseAt ?? facts.lastRequestAt,
      Date.parse(facts.record.last_activity ?? facts.record.updated_at) || 0,
    );
  if (suspendAfter !== null && unusedForMs >= suspendAfter) {
    return {
      renew: false,
      teardown: null,
      suspend: `idle ${Math.round(unusedForMs / 1000)} s: suspended (sandbox.suspend_after_minutes)`,
    };
  }
  const idleS = Math.round(plan.idleForMs / 1000);
  // The container is about to stop by itself: with suspension on, saved and suspended (a request
  // resumes it); off, saved and torn down (`alpine launch` resumes it).
  if (plan.nearTimeout && suspendAfter !== null) {
    return {
      renew: false,
      teardown: null,
      suspend: `idle ${idleS} s: saved and suspended before the container's inactivity timeout`,
    };
  }
  if (plan.nearTimeout) {
    return {
      renew: false,
      teardown: `idle ${Math.round(plan.idleForMs / 1000)} s: saved and stopped before the container's inactivity timeout`,
      teardownBecause: "idle",
    };
  }
  return { renew: false, teardown: null };
}
