import type { AlpineConfig } from "../config.ts";
import type { AlpineError } from "../errors.ts";
import type { FaultPoints } from "../faults.ts";
import type {
  CheckpointManifest,
  CheckpointStore,
  Clock,
  HostIdentity,
  Ids,
  Logger,
  Provider,
  RuntimeEndpoint,
  StateStore,
} from "../ports.ts";
import type {
  CheckpointRequest,
  DiffResponse,
  ExportRequest,
  ExportResponse,
  HealthResponse,
  InitRequest,
  LoginRequest,
  LoginResponse,
  RestoreRequest,
  SandboxdPhase,
  SandboxdStatus,
  TaskRequest,
  TaskResponse,
} from "../sandboxd-api.ts";
import type { ProviderKind, SandboxRecord } from "../schemas.ts";
import type { SandboxSecret } from "../secrets.ts";
import type { Overlap, WorkOnRepo } from "./decisions/overlaps.ts";

/**
 * The types the orchestrator is driven with and answers in. Wire types (what sandboxd sends and
 * takes) are inferred from the zod schemas of sandboxd-api.ts; `import type` keeps zod out of
 * start-up.
 */

/** What sandboxd's `GET /v1/status` answers (StatusResponseSchema). */
export type SandboxdStatusView = SandboxdStatus;

/** The sandboxd calls the orchestrator makes (SandboxdClient implements them). */
export interface SandboxdApi {
  status(): Promise<SandboxdStatus>;
  /** GET /healthz: that sandboxd answers at all (no workspace scan, unlike status). */
  health(): Promise<HealthResponse>;
  init(
    body: InitRequest,
    onPhase?: (phase: SandboxdPhase) => void,
    onOutput?: (line: string) => void,
  ): Promise<SandboxdStatus>;
  task(body: TaskRequest): Promise<TaskResponse>;
  diff(opts: { stat?: boolean }): Promise<DiffResponse>;
  login(body?: LoginRequest): Promise<LoginResponse>;
  shutdown(): Promise<void>;
  /** Writes a checkpoint inside the sandbox and returns its manifest. */
  checkpoint(body: CheckpointRequest): Promise<CheckpointManifest>;
  checkpointArtifact(checkpointId: string, name: string): Promise<ReadableStream<Uint8Array>>;
  deleteCheckpoint(checkpointId: string): Promise<void>;
  /** Stages one artifact for a restore. */
  putRestoreArtifact(name: string, body: ReadableStream<Uint8Array>): Promise<void>;
  restore(
    body: RestoreRequest,
    onPhase?: (phase: SandboxdPhase) => void,
    onOutput?: (line: string) => void,
  ): Promise<SandboxdStatus>;
  export(body: ExportRequest): Promise<ExportResponse>;
}

/** What an export produced (from the live workspace or from a checkpoint): ExportResponseSchema, plus the patch. */
export type WorkExport = ExportResponse & {
  /** The patch from base_commit to commit (only when asked for). */
  patch?: string;
};

/** Credentials for one clone or push (GitCredentialsSchema); never stored. */
export type GitCredentials = NonNullable<InitRequest["credentials"]>;

/** Exports work from a stored checkpoint, for sandboxes whose runtime is gone. */
export interface CheckpointExporter {
  export(
    manifest: CheckpointManifest,
    opts: {
      repo: string;
      branch: string;
      message: string;
      author: { name: string; email: string };
      push: boolean;
      patch: boolean;
      credentials?: GitCredentials;
      /** The earlier checkpoints `manifest` builds on (its depends_on), oldest first, verified. */
      chain?: CheckpointManifest[];
    },
  ): Promise<WorkExport>;
}

export interface PullRequestOpener {
  open(opts: {
    repo: string;
    head: string;
    base: string | null;
    title: string;
    body: string;
    credentials: GitCredentials | null;
  }): Promise<{ url: string }>;
}

export interface OrchestratorDeps {
  store: StateStore;
  clock: Clock;
  ids: Ids;
  host: HostIdentity;
  config: AlpineConfig;
  provider(kind: ProviderKind): Provider;
  /** A client for a sandboxd; `timeoutMs` bounds each request (status probes use a short one). */
  connect(endpoint: RuntimeEndpoint, opts?: { timeoutMs?: number }): SandboxdApi;
  /** Host credentials for a remote (git credential fill / GITHUB_TOKEN); null when none. */
  credentialsFor(repo: string): Promise<GitCredentials | null>;
  /** OpenCode auth.json entries for `opencode.auth_providers`. */
  authEntries(): Promise<Record<string, unknown>>;
  /** Secrets (`alpine secrets`) a sandbox of `repo` gets; absent: none. */
  secretsFor?(repo: string): Promise<SandboxSecret[]>;
  /**
   * Every sandbox's work as overlap warnings compare it (status, export); absent: the store's
   * records. A control plane's sandbox object stores only its own record; its registry has all.
   */
  peers?(): Promise<WorkOnRepo[]>;
  checkpoints: CheckpointStore;
  checkpointExporter: CheckpointExporter;
  pullRequests: PullRequestOpener;
  /** Author of export commits: the host's git user. */
  gitAuthor(): Promise<{ name: string; email: string }>;
  /** Whether pushes to this remote must carry credentials (github.require_auth for GitHub hosts). */
  requiresAuth(repo: string): boolean;
  /** Test builds only: told of every named step, so a test can kill the process there. */
  faults?: FaultPoints;
  /** Told of every best-effort step that failed and was ignored; silent without one. */
  log?: Logger;
}

export interface ExportInput {
  branch?: string;
  pr?: boolean;
  patch?: boolean;
  from_checkpoint?: boolean;
}

export interface ExportResult {
  record: SandboxRecord;
  work: WorkExport;
  source: "workspace" | "checkpoint";
  pr_url: string | null;
  checkpoint_id: string | null;
  auto_tore_down: boolean;
  exported_at: string;
  /** Other sandboxes' unexported work on the same repo touching the files exported (a warning). */
  overlaps?: Overlap[];
}

export interface LaunchInput {
  name: string;
  repo?: string;
  ref?: string;
  image_profile?: string;
  provider?: ProviderKind;
  task?: string;
  force_recreate?: boolean;
  /** Do not run the environment's setup (docs/environments.md). */
  skip_setup?: boolean;
}

export interface LaunchResult {
  record: SandboxRecord;
  reused: boolean;
  resumed: boolean;
  task_accepted: boolean;
  session_id: string | null;
  operation_id: string;
}

export interface Probe {
  state: "ok" | "unavailable" | "not_running";
  at: string | null;
  status: SandboxdStatusView | null;
  error: AlpineError | null;
  /**
   * A sandbox in `error` whose provider kept its workspace: it may hold work that nothing can
   * read until the sandbox runs again, so a teardown without --force must not drop it.
   */
  kept_workspace?: boolean;
}

export interface TeardownResult {
  record: SandboxRecord;
  destroyed: boolean;
  checkpoint_id: string | null;
}

export interface GcResult {
  torn_down: string[];
  kept: { name: string; reason: string }[];
}
