import { toAlpineError } from "../errors.ts";
import type { SandboxState } from "../lifecycle.ts";
import {
  type WaitFor,
  type WaitOutcome,
  type WaitStatus,
  waitExitCode,
  waitVerdict,
} from "../orchestrator/decisions/wait.ts";
import type { Clock } from "../ports.ts";
import type { AgentState } from "../schemas.ts";
import { CONTROL_PLANE_TASK_WAIT } from "./changes.ts";

/**
 * `alpine wait` and `task --wait` in the CLI: looks at each sandbox's status (the `status` verb,
 * local or through the control plane) until each has stopped for a reason (decisions/wait.ts).
 * Every look is its own short call, so no request is held open for the whole wait.
 */

export interface WaitItemView {
  name: string;
  outcome: WaitOutcome;
  reason: string;
  /** The sandbox's state and its agent's, as last seen (null: never seen, e.g. gone before the first look). */
  state: SandboxState | null;
  agent: AgentState | null;
  task_state: string | null;
  waited_ms: number;
}

export interface WaitView {
  for: WaitFor;
  exit_code: number;
  waited_ms: number;
  sandboxes: WaitItemView[];
}

export interface WaitDeps {
  /** `alpine status NAME` as the service answers it (local operations or the control plane). */
  status(name: string): Promise<WaitStatus>;
  clock: Pick<Clock, "now" | "sleep">;
  /** The control plane: paced like its `task --wait`; local: every 500 ms. */
  remote: boolean;
  /** Called as each sandbox stops (the CLI prints its line then, not at the end). */
  onStop?(item: WaitItemView): void;
}

export interface WaitOptions {
  for: WaitFor;
  /** Stop looking after this long; the sandboxes still going end as `timeout`. */
  timeoutMs?: number;
}

/** The pause before the next look, from the time waited so far. */
export function waitPauseMs(remote: boolean, waitedMs: number): number {
  return remote ? CONTROL_PLANE_TASK_WAIT.pollMs(waitedMs) : 500;
}

export async function waitOperation(names: string[], opts: WaitOptions, deps: WaitDeps): Promise<WaitView> {
  const started = deps.clock.now();
  const deadline = opts.timeoutMs === undefined ? Number.POSITIVE_INFINITY : started + opts.timeoutMs;
  const unique = [...new Set(names)];
  const stopped = new Map<string, WaitItemView>();
  const last = new Map<string, WaitStatus>();
  const unavailableSince = new Map<string, number>();
  const stop = (item: WaitItemView) => {
    stopped.set(item.name, item);
    deps.onStop?.(item);
  };
  for (let round = 0; ; round++) {
    const pending = unique.filter((n) => !stopped.has(n));
    await Promise.all(
      pending.map(async (name) => {
        const now = () => deps.clock.now();
        let s: WaitStatus;
        try {
          s = await deps.status(name);
        } catch (err) {
          const e = toAlpineError(err);
          // A name that never existed is a usage error (exit 1); one that vanished mid-wait
          // (a `launch --force-recreate` replaced it) ended the agent it had.
          if (e.reason === "sandbox_not_found" && round > 0) {
            return stop(item(name, "gone", "the sandbox no longer exists", last.get(name), now() - started));
          }
          if (!e.retryable) throw e;
          // A transient failure (the control plane or sandboxd briefly unreachable, another command
          // holding the lease) is a look that did not answer: counted like an unavailable sandboxd.
          if (!unavailableSince.has(name)) unavailableSince.set(name, now());
          const verdict = waitVerdict(
            {
              ...(last.get(name) ?? blankStatus(name)),
              runtime: { probe_state: "unavailable", agent: "unknown" },
              error: e.toJSON(),
            },
            now() - (unavailableSince.get(name) ?? now()),
          );
          if (verdict) stop(item(name, verdict.outcome, verdict.reason, last.get(name), now() - started));
          return;
        }
        last.set(name, s);
        if (s.runtime.probe_state === "unavailable") {
          if (!unavailableSince.has(name)) unavailableSince.set(name, now());
        } else unavailableSince.delete(name);
        const verdict = waitVerdict(s, now() - (unavailableSince.get(name) ?? now()));
        if (verdict) stop(item(name, verdict.outcome, verdict.reason, s, now() - started));
      }),
    );
    const waited = deps.clock.now() - started;
    if (stopped.size === unique.length) break;
    if (deps.clock.now() >= deadline) {
      for (const name of unique.filter((n) => !stopped.has(n))) {
        const s = last.get(name);
        const seconds = Math.round(waited / 1000);
        stop(item(name, "timeout", `still ${s?.runtime.agent ?? "unknown"} after ${seconds} s`, s, waited));
      }
      break;
    }
    await deps.clock.sleep(
      Math.min(waitPauseMs(deps.remote, waited), Math.max(0, deadline - deps.clock.now())),
    );
  }
  const sandboxes = unique.map((n) => stopped.get(n) as WaitItemView);
  return {
    for: opts.for,
    exit_code: waitExitCode(
      sandboxes.map((s) => s.outcome),
      opts.for,
    ),
    waited_ms: deps.clock.now() - started,
    sandboxes,
  };
}

function item(
  name: string,
  outcome: WaitOutcome,
  reason: string,
  s: WaitStatus | undefined,
  waitedMs: number,
): WaitItemView {
  return {
    name,
    outcome,
    reason,
    state: s?.state ?? null,
    agent: s?.runtime.agent ?? null,
    task_state: s?.task?.state ?? null,
    waited_ms: waitedMs,
  };
}

function blankStatus(name: string): WaitStatus {
  return {
    name,
    state: "running",
    task: null,
    error: null,
    runtime: { probe_state: "unavailable", agent: "unknown" },
  };
}
