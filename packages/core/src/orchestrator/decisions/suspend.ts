import type { SandboxState } from "../../lifecycle.ts";
import type { AgentState, SandboxRecord } from "../../schemas.ts";

/**
 * Scale-to-zero (docs/durability.md, "Suspension"): when a sandbox whose agent has been idle for
 * `sandbox.suspend_after_minutes` is suspended, what a suspended sandbox's work is, and which
 * commands bring it back. Used by sandboxd (local, docker: it stops itself), by the control
 * plane's alarm (Cloudflare) and by the orchestrator.
 */

/**
 * Agent states in which nothing is going on. busy and retry are working, needs_input waits for a
 * person, unknown cannot tell: none of those is ever suspended.
 */
export const SUSPENDABLE_AGENT_STATES: readonly AgentState[] = ["idle", "error", "budget"];

/** Sandbox states whose runtime runs and may be suspended (saving holds the lease: never). */
export const SUSPENDABLE_STATES: readonly SandboxState[] = ["running", "completed"];

/** sandbox.suspend_after_minutes in milliseconds; null when suspension is off (0). */
export function suspendAfterMs(sandbox: { suspend_after_minutes: number }): number | null {
  const minutes = sandbox.suspend_after_minutes;
  return minutes > 0 ? Math.round(minutes * 60_000) : null;
}

export interface IdleFacts {
  /** The record's state, where known (sandboxd does not know it). */
  state?: SandboxState;
  agent: AgentState;
  /** A task sandboxd handed the agent has not finished. */
  taskRunning: boolean;
  /** API or web UI requests (event streams included) open right now; status reads excluded. */
  requestsInFlight: number;
  /** An alpine operation holds the sandbox's lease (where known). */
  leaseHeld?: boolean;
  /** The latest of: the agent's last activity, the last request, the runtime's start. */
  lastActivityMs: number;
  nowMs: number;
  /** suspendAfterMs(config): null is off. */
  afterMs: number | null;
}

export type IdleVerdict =
  | { suspend: true; idleForMs: number }
  | {
      suspend: false;
      why: "off" | "not_live" | "agent_busy" | "task_running" | "in_use" | "operation_in_progress" | "recent";
      /** With `recent`: how long until it would be due (for a timer). */
      dueInMs?: number;
    };

/** Whether to suspend now. Anything of a busy agent, or anyone using the sandbox, keeps it. */
export function idleVerdict(f: IdleFacts): IdleVerdict {
  if (f.afterMs === null) return { suspend: false, why: "off" };
  if (f.state !== undefined && !SUSPENDABLE_STATES.includes(f.state))
    return { suspend: false, why: "not_live" };
  if (f.leaseHeld) return { suspend: false, why: "operation_in_progress" };
  if (!SUSPENDABLE_AGENT_STATES.includes(f.agent)) return { suspend: false, why: "agent_busy" };
  if (f.taskRunning) return { suspend: false, why: "task_running" };
  if (f.requestsInFlight > 0) return { suspend: false, why: "in_use" };
  const idleForMs = f.nowMs - f.lastActivityMs;
  if (idleForMs < f.afterMs) return { suspend: false, why: "recent", dueInMs: f.afterMs - idleForMs };
  return { suspend: true, idleForMs };
}

/**
 * The line a sandboxd that suspended itself writes last to its log (local, docker), with what the
 * record then keeps: the workspace as it was and the disk it holds.
 */
export const IDLE_SUSPEND_LOG_MESSAGE = "suspended: idle";
const LISTENING_LOG_MESSAGE = "listening";

export interface SelfSuspension {
  at: string;
  idle_ms: number;
  disk_bytes: number | null;
  workspace: { dirty: boolean; ahead: number; tree_hash: string | null } | null;
}

/**
 * Whether a runtime's own log (oldest first) says its sandboxd suspended itself, and how: the
 * last of its start ("listening") and suspension lines decides, so a sandboxd started again
 * after a suspension (or one that crashed after starting) is not taken for a suspended one.
 */
export function selfSuspension(lines: readonly string[]): SelfSuspension | null {
  for (let i = lines.length - 1; i >= 0; i--) {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(lines[i] as string) as Record<string, unknown>;
    } catch {
      // OpenCode's own lines and partial writes are not sandboxd's JSON: skipped.
      continue;
    }
    if (entry.msg === LISTENING_LOG_MESSAGE) return null;
    if (entry.msg !== IDLE_SUSPEND_LOG_MESSAGE) continue;
    const ws = entry.workspace as SelfSuspension["workspace"] | undefined;
    return {
      at: typeof entry.ts === "string" ? entry.ts : "",
      idle_ms: typeof entry.idle_ms === "number" ? entry.idle_ms : 0,
      disk_bytes: typeof entry.disk_bytes === "number" ? entry.disk_bytes : null,
      workspace:
        ws && typeof ws === "object"
          ? { dirty: Boolean(ws.dirty), ahead: Number(ws.ahead) || 0, tree_hash: ws.tree_hash ?? null }
          : null,
    };
  }
  return null;
}

/**
 * Whether a suspension where the disk dies with the runtime checkpoints first: the workspace is
 * not the verified checkpoint's, and a resume restores the workspace from that checkpoint alone.
 * Stricter than a teardown's unsaved work (safety.ts): work already exported is safe in the
 * remote, but without its own checkpoint the sandbox would come back without it (or refuse).
 */
export function checkpointBeforeSuspend(
  checkpoint: Pick<NonNullable<SandboxRecord["checkpoint"]>, "verified" | "tree_hash"> | null | undefined,
  workspace: { dirty: boolean; ahead: number; tree_hash: string | null } | null | undefined,
): boolean {
  if (!workspace) return false;
  const verified = checkpoint?.verified === true;
  if (verified && workspace.tree_hash !== null && checkpoint.tree_hash === workspace.tree_hash) return false;
  return workspace.dirty || workspace.ahead > 0 || verified;
}

/** Whether a command that needs the runtime (task, open, diff, export, checkpoint) resumes the sandbox first. */
export function needsResume(state: SandboxState): boolean {
  return state === "suspended";
}

/**
 * What a teardown without --force does with a suspended sandbox: its work is saved when the
 * suspension checkpointed it, or when the workspace it left holds nothing beyond the latest
 * verified checkpoint or export; then the kept runtime is removed without starting it. Otherwise
 * it is resumed first, so its unsaved work is checkpointed as any teardown's is.
 */
export function suspendedTeardown(
  record: Pick<SandboxRecord, "checkpoint" | "export"> & {
    suspension?: SandboxRecord["suspension"];
  },
): "destroy" | "resume_first" {
  const s = record.suspension;
  if (!s) return "resume_first";
  if (s.saved === "checkpoint") return "destroy";
  const ws = s.workspace;
  if (!ws) return "resume_first";
  if (!ws.dirty && ws.ahead === 0) return "destroy";
  if (ws.tree_hash === null) return "resume_first";
  if (record.checkpoint?.verified && record.checkpoint.tree_hash === ws.tree_hash) return "destroy";
  if (record.export?.tree_hash === ws.tree_hash) return "destroy";
  return "resume_first";
}
