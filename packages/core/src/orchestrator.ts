import { checkpoint } from "./orchestrator/checkpoint.ts";
import type { WorkOnRepo } from "./orchestrator/decisions/overlaps.ts";
import { hasUnsavedWork, teardownBlockers } from "./orchestrator/decisions/safety.ts";
import { exportWork } from "./orchestrator/export.ts";
import { gc } from "./orchestrator/gc.ts";
import { launch } from "./orchestrator/launch.ts";
import { activeLease, connectTo, getRecord, peerWork, probe } from "./orchestrator/reading.ts";
import { settle } from "./orchestrator/settle.ts";
import { noticeSelfSuspensions, resume, type SuspendResult, suspend } from "./orchestrator/suspend.ts";
import { reconcile, type TaskWaitOptions, task, waitForTask } from "./orchestrator/task.ts";
import { collectExitCheckpoint, teardown } from "./orchestrator/teardown.ts";
import type {
  ExportInput,
  ExportResult,
  GcResult,
  LaunchInput,
  LaunchResult,
  OrchestratorDeps,
  Probe,
  SandboxdApi,
  SandboxdStatusView,
  TeardownResult,
} from "./orchestrator/types.ts";
import type { CheckpointManifest, Progress } from "./ports.ts";
import { silentProgress } from "./ports.ts";
import type { Lease, SandboxRecord, StoredEvent } from "./schemas.ts";

export { contentHash } from "./orchestrator/decisions/checkpoints.ts";
export { exportMessage, summarise } from "./orchestrator/decisions/export.ts";
export type { SuspendResult } from "./orchestrator/suspend.ts";
export type { TaskWaitOptions } from "./orchestrator/task.ts";
export type {
  CheckpointExporter,
  ExportInput,
  ExportResult,
  GcResult,
  GitCredentials,
  LaunchInput,
  LaunchResult,
  OrchestratorDeps,
  Probe,
  PullRequestOpener,
  SandboxdApi,
  SandboxdStatusView,
  TeardownResult,
  WorkExport,
} from "./orchestrator/types.ts";

/**
 * The one place where lifecycle rules, leases and safety live. The CLI and the Durable Object both
 * drive sandboxes through this class. It is a façade: the rules are pure functions in
 * orchestrator/decisions/, the operations that carry them out are in orchestrator/ by job.
 */
export class Orchestrator {
  constructor(private readonly deps: OrchestratorDeps) {}

  // ---------- reading ----------

  get(name: string): Promise<SandboxRecord> {
    return getRecord(this.deps, name);
  }

  list(): Promise<SandboxRecord[]> {
    return this.deps.store.list();
  }

  /** Every sandbox's work for overlap warnings: all of them, also where this store holds one record. */
  peers(): Promise<WorkOnRepo[]> {
    return peerWork(this.deps);
  }

  /** Every record, with the sandboxes whose runtime suspended itself recorded as `suspended` first. */
  listNoticingSuspensions(): Promise<SandboxRecord[]> {
    return noticeSelfSuspensions(this.deps);
  }

  lease(name: string): Promise<Lease | null> {
    return this.deps.store.getLease(name);
  }

  /** The lease of a running operation, or null when there is none or it is stale. */
  activeLease(name: string): Promise<Lease | null> {
    return activeLease(this.deps, name);
  }

  events(name: string, opts?: { afterSeq?: number; limit?: number }): Promise<StoredEvent[]> {
    return this.deps.store.events(name, opts);
  }

  /** Asks the sandbox's sandboxd how it is. Never throws. */
  probe(record: SandboxRecord, opts: { timeoutMs?: number } = {}): Promise<Probe> {
    return probe(this.deps, record, opts);
  }

  /** A connection to a live sandbox, or sandbox_not_running / sandbox_unavailable. */
  connect(record: SandboxRecord): Promise<SandboxdApi> {
    return connectTo(this.deps, record);
  }

  /** Settles a sandbox a dead command left in provisioning, saving or tearing_down (unless a live one holds it). */
  settle(record: SandboxRecord): Promise<SandboxRecord> {
    return settle(this.deps, record);
  }

  /** Brings the record in line with what sandboxd observed; skipped while another operation holds the lease. */
  reconcile(given: SandboxRecord, probe: Probe): Promise<SandboxRecord> {
    return reconcile(this.deps, given, probe);
  }

  // ---------- writing ----------

  launch(input: LaunchInput, progress: Progress = silentProgress): Promise<LaunchResult> {
    return launch(this.deps, input, progress);
  }

  /** Brings a suspended sandbox back for a command that needs its runtime; a no-op otherwise. */
  resume(name: string, progress: Progress = silentProgress): Promise<SandboxRecord> {
    return resume(this.deps, name, progress);
  }

  /** Suspends the sandbox if its agent has been idle long enough (the control plane's alarm). */
  suspend(
    name: string,
    opts: { lastRequestAt?: number; requestsInFlight?: number } = {},
    progress: Progress = silentProgress,
  ): Promise<SuspendResult> {
    return suspend(this.deps, name, opts, progress);
  }

  task(
    name: string,
    prompt: string,
    opts: { newSession?: boolean; budget?: string } = {},
  ): Promise<{ record: SandboxRecord; session_id: string }> {
    return task(this.deps, name, prompt, opts);
  }

  /** Waits until the current task finishes; the sandbox is then completed (or task_failed is thrown). */
  waitForTask(name: string, opts: TaskWaitOptions = {}): Promise<SandboxRecord> {
    return waitForTask(this.deps, name, opts);
  }

  /** Whether the workspace holds work that is neither in the latest verified checkpoint nor in the latest export. */
  hasUnsavedWork(record: SandboxRecord, workspace: SandboxdStatusView["workspace"]): boolean {
    return hasUnsavedWork(record, workspace);
  }

  /** Why a teardown without --force would not go ahead right now. */
  blockers(record: SandboxRecord, probe: Probe, lease: { type: string } | null): string[] {
    return teardownBlockers(record, probe, lease);
  }

  /** With `resume`, a suspended sandbox is brought back first (as resume() does). */
  checkpoint(
    name: string,
    progress: Progress = silentProgress,
    opts: { resume?: boolean } = {},
  ): Promise<{ record: SandboxRecord; manifest: CheckpointManifest }> {
    return checkpoint(this.deps, name, progress, {
      ...(opts.resume ? { resumeFirst: () => resume(this.deps, name, progress) } : {}),
    });
  }

  teardown(
    name: string,
    opts: { force: boolean },
    progress: Progress = silentProgress,
  ): Promise<TeardownResult> {
    return teardown(this.deps, name, opts, progress);
  }

  /**
   * Copies the checkpoint a SIGTERMed runtime's sandboxd wrote and holds, then ends the sandbox as
   * a teardown with a checkpoint does (null: none is held); see orchestrator/teardown.ts.
   */
  collectExitCheckpoint(name: string, progress: Progress = silentProgress): Promise<TeardownResult | null> {
    return collectExitCheckpoint(this.deps, name, progress);
  }

  /** Commits the sandbox's work onto a branch and pushes it (or makes a patch); see orchestrator/export.ts. */
  export(name: string, input: ExportInput, progress: Progress = silentProgress): Promise<ExportResult> {
    return exportWork(this.deps, name, input, progress);
  }

  /** Removes completed sandboxes whose work is saved, after the retention period. */
  gc(opts: { dryRun: boolean }): Promise<GcResult> {
    return gc(this.deps, opts);
  }
}
