import type { AlpineConfig } from "./config.ts";
import type { CheckpointManifestData } from "./sandboxd-api.ts";
import type { Lease, ProviderKind, SandboxRecord, StoredEvent } from "./schemas.ts";
import type { SandboxSecret } from "./secrets.ts";

/**
 * The ports the orchestrator runs against. The CLI implements them with
 * SQLite, processes and the local disk; the Durable Object with DO storage,
 * a Container and R2. Nothing here may depend on a runtime.
 */

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls fn every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
  sleep(ms: number): Promise<void>;
}

export interface Ids {
  sandboxId(): string;
  operationId(): string;
}

/** Who this process is, for lease holders, and whether a holder on this host is still alive. */
export interface HostIdentity {
  host: string;
  pid: number;
  isProcessAlive(pid: number): boolean;
}

export interface StateStore {
  get(name: string): Promise<SandboxRecord | null>;
  list(): Promise<SandboxRecord[]>;
  /**
   * Writes a record and appends events atomically. `expectedVersion` null means
   * "must not exist yet"; otherwise the stored version must equal it. Returns
   * false when that comparison fails (someone else wrote first).
   */
  put(record: SandboxRecord, expectedVersion: number | null, events: StoredEvent[]): Promise<boolean>;
  /** Removes a record (force-recreate); its events stay for the log. */
  remove(name: string, expectedVersion: number): Promise<boolean>;
  appendEvents(events: StoredEvent[]): Promise<void>;
  events(name: string, opts?: { afterSeq?: number; limit?: number }): Promise<StoredEvent[]>;
  getLease(name: string): Promise<Lease | null>;
  /** Replaces the lease iff the current one has id `expectedId` (null: no lease). */
  compareAndSwapLease(name: string, expectedId: string | null, next: Lease | null): Promise<boolean>;
}

/** Provider-specific, JSON-serialisable, secret-free description of a runtime (pid, dir, container id…). */
export type RuntimeHandle = Record<string, unknown>;

export interface RuntimeEndpoint {
  url: string;
  token: string;
}

export interface RuntimeSpec {
  sandbox_id: string;
  name: string;
  image: string;
  config: AlpineConfig;
  /** OpenCode auth.json entries for the allowed providers; handed to the runtime, never stored. */
  auth: Record<string, unknown>;
  /** Repo and global secrets for this sandbox's repo (`alpine secrets`); handed to the runtime, never stored. */
  secrets?: SandboxSecret[];
}

/**
 * What the launch will do with a runtime once it is started, told to start() so a provider can
 * begin early: `init_repo` when it will `POST /v1/init` that repo (never before a restore). A
 * hint only; a provider may ignore it.
 */
export interface RuntimeStartIntent {
  init_repo?: string;
  /**
   * When it will restore a checkpoint: that checkpoint's OpenCode data artifact (verified in the
   * store). A provider that can hand sandboxd the stored file starts OpenCode on it at boot.
   */
  restore_opencode_data?: { sha256: string; bytes: number };
}

/**
 * What a provider's runtimes get here: its kind's declared capabilities
 * (PROVIDERS, provider-kinds.ts) with what only the machine can say (local:
 * bubblewrap or none).
 */
export interface ProviderCapabilities {
  kind: ProviderKind;
  isolation: string;
  /** The workspace outlives a stopped runtime (so a restart resumes from it). */
  persistent_workspace: boolean;
}

export interface Provider {
  readonly kind: ProviderKind;
  capabilities(): Promise<ProviderCapabilities>;
  /**
   * Checks what can be checked before a new sandbox is created (its image is
   * there, the daemon answers) and throws the error a launch would hit. Optional.
   */
  preflight?(input: { image: string; image_profile: string }): Promise<void>;
  /** Allocates the runtime's resources; adopting existing ones (same sandbox id) is not an error. */
  create(spec: RuntimeSpec): Promise<RuntimeHandle>;
  /** Starts sandboxd and returns the handle to store, now pointing at a live runtime. */
  start(handle: RuntimeHandle, spec: RuntimeSpec, intent?: RuntimeStartIntent): Promise<RuntimeHandle>;
  /** How to reach sandboxd, or null when nothing is running there. */
  endpoint(handle: RuntimeHandle): Promise<RuntimeEndpoint | null>;
  /** Stops the runtime, keeping its resources. Idempotent. */
  stop(handle: RuntimeHandle): Promise<void>;
  /** Whether the runtime's resources still hold a workspace (so a restart need not restore a checkpoint). */
  hasWorkspace(handle: RuntimeHandle): Promise<boolean>;
  /** Removes the runtime and all its resources. Idempotent. */
  destroy(handle: RuntimeHandle): Promise<void>;
  /** The runtime's own log lines (sandboxd and OpenCode), newest last. */
  logs(handle: RuntimeHandle, opts?: { tail?: number }): Promise<string[]>;
  /**
   * Housekeeping for `gc` of what the provider runs on its own, outside any
   * sandbox (the local warm pool): removes dead, stale and excess runtimes and
   * starts the missing ones. Optional.
   */
  collect?(): Promise<{ removed: string[]; started: string[] }>;
}

/** Progress of slow steps, for humans (stderr on a TTY). */
export interface Progress {
  step(name: string): void;
  warn(message: string): void;
}

export const silentProgress: Progress = { step() {}, warn() {} };

/**
 * What a checkpoint holds (docs/durability.md); written by sandboxd, stored beside its
 * artifacts. The wire type of sandboxd-api.ts's CheckpointManifestSchema.
 */
export type CheckpointManifest = CheckpointManifestData;

/**
 * Where the orchestrator tells what it chose not to fail on: a best-effort step (stopping a runtime
 * that may already be gone, deleting a leftover) that failed. Optional in OrchestratorDeps; the
 * orchestrator stays silent without one.
 */
export interface Logger {
  /** A failure that changes nothing for the user (the step was best effort). */
  debug(message: string, details?: Record<string, unknown>): void;
  /** A failure that leaves something behind the user may want to know about. */
  warn(message: string, details?: Record<string, unknown>): void;
}

/**
 * Where verified checkpoints live: a local directory for the CLI, R2 on
 * Cloudflare. Artifacts travel as web streams so both runtimes can pipe them.
 */
export interface CheckpointStore {
  /** Stores one artifact; returns its sha256 and size as written. */
  putArtifact(
    sandboxId: string,
    checkpointId: string,
    name: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<{ sha256: string; bytes: number }>;
  putManifest(manifest: CheckpointManifest): Promise<void>;
  getManifest(sandboxId: string, checkpointId: string): Promise<CheckpointManifest | null>;
  getArtifact(sandboxId: string, checkpointId: string, name: string): Promise<ReadableStream<Uint8Array>>;
  /**
   * Re-reads every artifact and checks it against the manifest (sha256, size,
   * and that the git bundle is sound); throws checkpoint_checksum_mismatch
   * naming the artifact that failed.
   */
  verify(manifest: CheckpointManifest): Promise<void>;
  /** Checkpoint ids of a sandbox, oldest first. */
  list(sandboxId: string): Promise<string[]>;
  delete(sandboxId: string, checkpointId: string): Promise<void>;
  /**
   * Removes what an interrupted write left behind for a sandbox: partial artifacts, artifacts
   * no checkpoint refers to, checkpoint entries without a manifest. Called holding the
   * sandbox's lease, so no write of that sandbox runs meanwhile. Optional: a store whose
   * writes are atomic has nothing to prune.
   */
  prune?(sandboxId: string): Promise<void>;
}
