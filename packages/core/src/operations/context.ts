import type { AlpineConfig } from "../config.ts";
import type { Orchestrator, TaskWaitOptions } from "../orchestrator.ts";
import type { Progress } from "../ports.ts";
import type { SandboxRecord } from "../schemas.ts";

/** The orchestrator methods the operations call: its public API (a fake of these is enough in tests). */
export type OperationsOrchestrator = Pick<
  Orchestrator,
  | "get"
  | "list"
  | "peers"
  | "activeLease"
  | "events"
  | "probe"
  | "connect"
  | "settle"
  | "reconcile"
  | "launch"
  | "task"
  | "waitForTask"
  | "blockers"
  | "checkpoint"
  | "teardown"
  | "export"
  | "gc"
  | "resume"
  | "listNoticingSuspensions"
>;

/**
 * What an operation runs against. The CLI (local and docker providers) and
 * the control plane's Durable Object each build one per call; they differ
 * only in where the web UI is reached and how a runtime's log is read.
 */
export interface OperationContext {
  orchestrator: OperationsOrchestrator;
  config: AlpineConfig;
  progress: Progress;
  /** The last `tail` lines of the runtime's own log (sandboxd and OpenCode), from its provider. */
  runtimeLogs(record: SandboxRecord, tail: number): Promise<string[]>;
  /**
   * The web UI's address as the user reaches it. Omitted: the runtime's own
   * `web_url` (local providers); the control plane serves it under its origin.
   */
  webUrl?(record: SandboxRecord): string | null;
  /** The one-time login link that trades `code` for the web UI's session cookie. */
  loginUrl(record: SandboxRecord, code: string): string;
  /**
   * The one-time link to a preview of `port` (`path` as sandboxd gave it): its own origin per
   * port. Absent: this side cannot serve previews (`previewsUnavailable` says why).
   */
  previewUrl?(record: SandboxRecord, path: string, port: number): string;
  /** Why previews cannot be served here (e.g. a control plane without per-sandbox hostnames). */
  previewsUnavailable?: string;
  /**
   * How `task --wait` paces its probes of sandboxd. Omitted: every 500 ms (the CLI, whose
   * sandboxd is a local process); the control plane passes CONTROL_PLANE_TASK_WAIT.
   */
  taskWait?: TaskWaitOptions;
}
