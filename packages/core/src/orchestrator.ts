import type { AlpineConfig } from "./config.ts";
import { AlpineError, type ErrorJson, toAlpineError } from "./errors.ts";
import type { FaultPoints, FaultStep } from "./faults.ts";
import { acquireLease, type HeldLease, type OperationType, staleReason } from "./leases.ts";
import { type SandboxState, transition } from "./lifecycle.ts";
import { validateName } from "./names.ts";
import type {
  CheckpointManifest,
  CheckpointStore,
  Clock,
  HostIdentity,
  Ids,
  Progress,
  Provider,
  RuntimeEndpoint,
  RuntimeHandle,
  RuntimeSpec,
  StateStore,
} from "./ports.ts";
import { silentProgress } from "./ports.ts";
import { newSandboxRecord } from "./records.ts";
import { validateBranchName, validateRef } from "./refs.ts";
import type {
  AgentState,
  CheckpointRecord,
  ExportRecord,
  ProviderKind,
  SandboxRecord,
  StoredEvent,
} from "./schemas.ts";

/** What the orchestrator needs from a sandboxd (SandboxdClient implements it). */
export interface SandboxdStatusView {
  phase: string;
  error: ErrorJson | null;
  workspace: {
    branch: string;
    base_commit: string;
    head: string | null;
    dirty: boolean;
    changed_files: { path: string; status: string }[];
    ahead: number;
    /** git tree hash of the whole working tree (tracked + untracked, not ignored). */
    tree_hash: string | null;
  } | null;
  agent: { state: AgentState; last_activity: string | null; session_id: string | null };
  task: {
    session_id: string;
    state: "running" | "completed" | "failed";
    finished_at: string | null;
    error?: unknown;
  } | null;
  opencode: { version: string | null; restarts: number };
}

export interface SandboxdApi {
  status(): Promise<SandboxdStatusView>;
  init(
    body: {
      repo: string;
      ref?: string;
      branch: string;
      credentials?: { username: string; password: string };
    },
    onPhase?: (phase: string) => void,
  ): Promise<SandboxdStatusView>;
  task(body: { prompt: string; session_id?: string }): Promise<{ session_id: string }>;
  diff(opts: { stat: boolean }): Promise<{
    files: { path: string; status: string; insertions: number; deletions: number }[];
    patch?: string;
  }>;
  login(): Promise<{ code: string; expires_at: string }>;
  shutdown(): Promise<void>;
  /** Writes a checkpoint inside the sandbox and returns its manifest. */
  checkpoint(body: { checkpoint_id: string; created_at: string }): Promise<CheckpointManifest>;
  checkpointArtifact(checkpointId: string, name: string): Promise<ReadableStream<Uint8Array>>;
  deleteCheckpoint(checkpointId: string): Promise<void>;
  /** Stages one artifact for a restore. */
  putRestoreArtifact(name: string, body: ReadableStream<Uint8Array>): Promise<void>;
  restore(
    body: { manifest: CheckpointManifest; repo: string; branch: string },
    onPhase?: (phase: string) => void,
  ): Promise<SandboxdStatusView>;
  export(body: {
    branch: string;
    message: string;
    author: { name: string; email: string };
    push: boolean;
    credentials?: GitCredentials;
  }): Promise<WorkExport>;
}

/** What an export produced (from the live workspace or from a checkpoint). */
export interface WorkExport {
  branch: string;
  commit: string;
  base_commit: string;
  tree_hash: string;
  files_changed: number;
  insertions: number;
  deletions: number;
  pushed: boolean;
  remote: string | null;
  /** The patch from base_commit to commit (only when asked for). */
  patch?: string;
}

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

export interface GitCredentials {
  username: string;
  password: string;
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
  checkpoints: CheckpointStore;
  checkpointExporter: CheckpointExporter;
  pullRequests: PullRequestOpener;
  /** Author of export commits: the host's git user. */
  gitAuthor(): Promise<{ name: string; email: string }>;
  /** Whether pushes to this remote must carry credentials (github.require_auth for GitHub hosts). */
  requiresAuth(repo: string): boolean;
  /** Test builds only: told of every named step, so a test can kill the process there. */
  faults?: FaultPoints;
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
}

export interface LaunchInput {
  name: string;
  repo?: string;
  ref?: string;
  image_profile?: string;
  provider?: ProviderKind;
  task?: string;
  force_recreate?: boolean;
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

const LIVE_STATES: readonly SandboxState[] = ["running", "completed", "saving"];
/** States that exist only while the operation that entered them holds the sandbox's lease. */
const TRANSITIONAL_STATES: readonly SandboxState[] = ["provisioning", "saving", "tearing_down"];

/**
 * The one place where lifecycle rules, leases and safety live. The CLI and the
 * Durable Object both drive sandboxes through this class.
 */
export class Orchestrator {
  constructor(private readonly deps: OrchestratorDeps) {}

  private now(): string {
    return new Date(this.deps.clock.now()).toISOString();
  }

  /** Announces a named step (see faults.ts); a no-op unless a test build wired fault points. */
  private async at(step: FaultStep): Promise<void> {
    if (this.deps.faults) await this.deps.faults.reached(step);
  }

  // ---------- reading ----------

  async get(name: string): Promise<SandboxRecord> {
    validateName(name);
    const record = await this.deps.store.get(name);
    if (!record) throw new AlpineError("sandbox_not_found", `sandbox '${name}' not found`, { name });
    return record;
  }

  list(): Promise<SandboxRecord[]> {
    return this.deps.store.list();
  }

  async lease(name: string) {
    return this.deps.store.getLease(name);
  }

  /** The lease of a running operation, or null when there is none or it is stale. */
  async activeLease(name: string) {
    const lease = await this.deps.store.getLease(name);
    if (!lease || staleReason(lease, this.deps.clock.now(), this.deps.host)) return null;
    return lease;
  }

  events(name: string, opts?: { afterSeq?: number; limit?: number }): Promise<StoredEvent[]> {
    return this.deps.store.events(name, opts);
  }

  private async endpointOf(record: SandboxRecord): Promise<RuntimeEndpoint | null> {
    if (!record.runtime) return null;
    return this.deps.provider(record.provider).endpoint(record.runtime.handle);
  }

  /**
   * Asks the sandbox's sandboxd how it is. Never throws. `timeoutMs` bounds
   * the request (`status` uses a short one; decisions such as launch's reuse
   * keep the client's default, so a slow sandbox is not mistaken for a dead one).
   */
  async probe(record: SandboxRecord, opts: { timeoutMs?: number } = {}): Promise<Probe> {
    const at = this.now();
    if (!LIVE_STATES.includes(record.state) || !record.runtime) {
      const kept =
        record.state === "error" && record.runtime !== null
          ? await this.deps
              .provider(record.provider)
              .hasWorkspace(record.runtime.handle)
              .catch(() => false)
          : false;
      return { state: "not_running", at: null, status: null, error: null, kept_workspace: kept };
    }
    try {
      const endpoint = await this.endpointOf(record);
      if (!endpoint) {
        return {
          state: "unavailable",
          at,
          status: null,
          error: new AlpineError("sandbox_unavailable", `sandbox '${record.name}' has no running runtime`),
        };
      }
      const status = await this.deps.connect(endpoint, opts).status();
      return { state: "ok", at, status, error: null };
    } catch (err) {
      return { state: "unavailable", at, status: null, error: toAlpineError(err) };
    }
  }

  /** A connection to a live sandbox, or sandbox_not_running / sandbox_unavailable. */
  async connect(record: SandboxRecord): Promise<SandboxdApi> {
    if (!LIVE_STATES.includes(record.state)) {
      throw new AlpineError(
        "sandbox_not_running",
        `sandbox '${record.name}' is ${record.state}; run \`alpine launch ${record.name}\` to start it`,
        { state: record.state },
      );
    }
    const endpoint = await this.endpointOf(record);
    if (!endpoint) {
      throw new AlpineError("sandbox_unavailable", `sandbox '${record.name}' has no running runtime`, {
        name: record.name,
      });
    }
    return this.deps.connect(endpoint);
  }

  // ---------- writing ----------

  /** Runs fn holding the sandbox's persisted lease. */
  private async withLease<T>(
    record: Pick<SandboxRecord, "id" | "name">,
    type: OperationType,
    fn: (op: { id: string; lease: HeldLease }) => Promise<T>,
    operationId = this.deps.ids.operationId(),
  ): Promise<T> {
    const lease = await acquireLease(this.deps, record, type, operationId);
    try {
      await this.settleInterrupted(record.name, operationId);
      return await fn({ id: operationId, lease });
    } finally {
      await lease.release();
    }
  }

  /**
   * Called holding the lease. A sandbox still in provisioning, saving or tearing_down was left
   * there by an operation whose process died (those states exist only while their operation
   * holds the lease, and we hold it now). Settles it, so every operation and `status` start
   * from the truth (docs/reliability.md):
   * - provisioning → error; whatever runtime the dead launch started is stopped;
   * - saving → back to the state it was saved from; checkpoints the dead operation stored but
   *   never recorded as verified are deleted, so the previous verified one stays the one;
   * - tearing_down stays: the decision to destroy was taken with the safety checks passed (or
   *   --force), so `teardown` finishes it; its runtime is stopped meanwhile.
   */
  private async settleInterrupted(name: string, operationId: string): Promise<void> {
    const record = await this.deps.store.get(name);
    if (!record || !TRANSITIONAL_STATES.includes(record.state)) return;
    if (record.state === "provisioning") {
      await this.stopRuntime(record);
      await this.move(record, "error", operationId, "the launch was interrupted (its process died)", {
        error: new AlpineError(
          "sandbox_unavailable",
          `the launch of '${name}' was interrupted; run \`alpine launch ${name}\` to start it again`,
          { interrupted: "launch" },
        ).toJSON(),
      });
      return;
    }
    if (record.state === "saving") {
      let from: SandboxState | null = null;
      for (const e of await this.deps.store.events(name)) {
        if (e.kind === "transition" && e.to === "saving") from = e.from;
      }
      await this.discardUnverifiedCheckpoints(record);
      const back = from === "running" || from === "completed" ? from : "error";
      await this.move(
        record,
        back,
        operationId,
        "the checkpoint was interrupted (its process died); the previous verified checkpoint stays",
        back === "error"
          ? {
              error: new AlpineError(
                "sandbox_unavailable",
                `a checkpoint of '${name}' was interrupted`,
              ).toJSON(),
            }
          : {},
      );
      return;
    }
    // tearing_down
    await this.stopRuntime(record);
    if (record.error?.details?.interrupted !== "teardown") {
      await this.update(record, {
        error: new AlpineError(
          "sandbox_unavailable",
          `the teardown of '${name}' was interrupted; run \`alpine teardown ${name}\` to finish it, or \`alpine launch ${name}\` to bring it back`,
          { interrupted: "teardown" },
        ).toJSON(),
      });
      await this.deps.store.appendEvents([
        {
          sandbox_id: record.id,
          name,
          at: this.now(),
          kind: "note",
          from: null,
          to: null,
          operation_id: operationId,
          reason: "the teardown was interrupted (its process died); its runtime was stopped",
        },
      ]);
    }
  }

  /** Stops a record's runtime, if it has one (best effort: the provider's stop is idempotent). */
  private async stopRuntime(record: SandboxRecord): Promise<void> {
    if (!record.runtime) return;
    await this.deps
      .provider(record.provider)
      .stop(record.runtime.handle)
      .catch(() => {});
  }

  /** Deletes stored checkpoints newer than the recorded verified one (an interrupted checkpoint's), then prunes. */
  private async discardUnverifiedCheckpoints(record: SandboxRecord): Promise<void> {
    const store = this.deps.checkpoints;
    const verified = record.checkpoint?.verified ? record.checkpoint : null;
    for (const id of await store.list(record.id)) {
      if (id === verified?.id) continue;
      const manifest = await store.getManifest(record.id, id).catch(() => null);
      if (!verified || !manifest || manifest.created_at > verified.created_at) {
        await store.delete(record.id, id);
      }
    }
    await store.prune?.(record.id);
  }

  /**
   * Settles a sandbox left in provisioning, saving or tearing_down by a command that died (see
   * settleInterrupted), unless a live operation holds it. `status` calls this so it reports the
   * truth; every mutating operation does it anyway once it holds the lease.
   */
  async settle(record: SandboxRecord): Promise<SandboxRecord> {
    if (!TRANSITIONAL_STATES.includes(record.state) || (await this.activeLease(record.name))) return record;
    try {
      return await this.withLease(record, "reconcile", () => this.get(record.name));
    } catch (err) {
      if (err instanceof AlpineError && err.reason === "operation_in_progress") return record;
      throw err;
    }
  }

  /** Applies a state change through the lifecycle table and persists it with its event. */
  private async move(
    record: SandboxRecord,
    to: SandboxState,
    operationId: string,
    reason: string,
    patch: Partial<SandboxRecord> = {},
  ): Promise<SandboxRecord> {
    const at = this.now();
    const event = transition(record, to, { at, operation_id: operationId, reason });
    const next: SandboxRecord = {
      ...record,
      ...patch,
      state: to,
      updated_at: at,
      version: record.version + 1,
    };
    await this.save(record, next, [{ ...event, name: record.name, kind: "transition" }]);
    return next;
  }

  /** Persists a change that is not a state change (runtime handle, task, agent…). */
  private async update(record: SandboxRecord, patch: Partial<SandboxRecord>): Promise<SandboxRecord> {
    const next: SandboxRecord = { ...record, ...patch, updated_at: this.now(), version: record.version + 1 };
    await this.save(record, next, []);
    return next;
  }

  private async save(prev: SandboxRecord, next: SandboxRecord, events: StoredEvent[]): Promise<void> {
    if (next.state !== prev.state && events.length === 0) {
      throw new AlpineError("internal_error", "state changed without a lifecycle event");
    }
    if (!(await this.deps.store.put(next, prev.version, events))) {
      throw new AlpineError(
        "operation_in_progress",
        `sandbox '${prev.name}' was changed by another command`,
        {},
      );
    }
  }

  private spec(record: SandboxRecord, auth: Record<string, unknown>): RuntimeSpec {
    const image = this.deps.config.sandbox.image_profiles[record.image_profile];
    if (!image) {
      throw new AlpineError(
        "image_profile_unknown",
        `image profile '${record.image_profile}' is not configured`,
        {
          image_profile: record.image_profile,
          known: Object.keys(this.deps.config.sandbox.image_profiles),
        },
      );
    }
    return { sandbox_id: record.id, name: record.name, image, config: this.deps.config, auth };
  }

  async launch(input: LaunchInput, progress: Progress = silentProgress): Promise<LaunchResult> {
    const { config } = this.deps;
    const name = validateName(input.name);
    if (input.ref !== undefined) validateRef(input.ref);
    const profile = input.image_profile ?? config.sandbox.image_profile;
    if (!config.sandbox.image_profiles[profile]) {
      throw new AlpineError("image_profile_unknown", `image profile '${profile}' is not configured`, {
        image_profile: profile,
        known: Object.keys(config.sandbox.image_profiles),
      });
    }
    let record = await this.deps.store.get(name);

    if (record) {
      const conflicts: string[] = [];
      if (input.repo !== undefined && record.repo !== input.repo)
        conflicts.push(`repo ${record.repo} ≠ ${input.repo}`);
      if (input.image_profile !== undefined && record.image_profile !== input.image_profile) {
        conflicts.push(`image profile ${record.image_profile} ≠ ${input.image_profile}`);
      }
      if (input.provider !== undefined && record.provider !== input.provider) {
        conflicts.push(`provider ${record.provider} ≠ ${input.provider}`);
      }
      if (conflicts.length > 0) {
        if (!input.force_recreate) {
          throw new AlpineError(
            "sandbox_identity_conflict",
            `sandbox '${name}' already exists with another identity (${conflicts.join("; ")})`,
            {
              name,
              existing: { repo: record.repo, image_profile: record.image_profile, provider: record.provider },
            },
          );
        }
        await this.teardown(name, { force: true }, progress);
        const gone = await this.deps.store.get(name);
        if (gone && !(await this.deps.store.remove(name, gone.version))) {
          throw new AlpineError(
            "operation_in_progress",
            `sandbox '${name}' was changed by another command`,
            {},
          );
        }
        record = null;
      }
    }

    if (!record) {
      if (!input.repo) {
        throw new AlpineError(
          "repo_resolution_failed",
          `sandbox '${name}' does not exist; pass --repo to create it`,
          {
            name,
          },
        );
      }
      // github.branch_prefix may make a name git refuses: say so before anything is created.
      validateBranchName(`${config.github.branch_prefix}/${name}`);
      // What the provider can tell without creating anything (an image that is not built) is said now,
      // so a launch that cannot work leaves no sandbox behind.
      const image = config.sandbox.image_profiles[profile] as string;
      await this.deps
        .provider(input.provider ?? config.sandbox.provider)
        .preflight?.({ image, image_profile: profile });
      const at = this.now();
      const created = newSandboxRecord(
        {
          id: this.deps.ids.sandboxId(),
          name,
          provider: input.provider ?? config.sandbox.provider,
          repo: input.repo,
          ref: input.ref ?? null,
          branch: `${config.github.branch_prefix}/${name}`,
          image_profile: profile,
        },
        at,
      );
      const note: StoredEvent = {
        sandbox_id: created.id,
        name,
        at,
        kind: "note",
        from: null,
        to: "new",
        operation_id: null,
        reason: `created for ${created.repo}`,
      };
      if (!(await this.deps.store.put(created, null, [note]))) {
        throw new AlpineError(
          "operation_in_progress",
          `sandbox '${name}' is being created by another command`,
          {},
        );
      }
      record = created;
    }

    const base = record;
    return this.withLease(base, "launch", async (op) => {
      await this.at("launch.lease_acquired");
      let current = await this.get(name);
      let reused = false;
      const resumed =
        current.state === "destroyed" || current.state === "error" || current.state === "tearing_down";

      if (current.state === "running" || current.state === "completed") {
        const probe = await this.probe(current);
        if (probe.state === "ok" && probe.status?.phase === "ready") {
          reused = true;
        } else {
          current = await this.move(current, "error", op.id, "runtime unavailable; recovering", {
            error: (probe.error ?? new AlpineError("sandbox_unavailable", "runtime not ready")).toJSON(),
          });
        }
      } else if (current.state === "tearing_down") {
        // A teardown that died mid-way (settleInterrupted stopped its runtime): launching brings it back.
        current = await this.move(current, "error", op.id, "launched again after an interrupted teardown");
      }

      if (!reused) {
        current = await this.provision(current, op.id, progress);
      }

      await this.at("launch.running");
      let taskAccepted = false;
      let sessionId: string | null = current.task?.session_id ?? null;
      if (input.task) {
        const result = await this.sendTask(current, input.task, op.id);
        current = result.record;
        taskAccepted = true;
        sessionId = result.session_id;
      }
      progress.step("ready");
      return {
        record: current,
        reused,
        resumed,
        task_accepted: taskAccepted,
        session_id: sessionId,
        operation_id: op.id,
      };
    });
  }

  /**
   * new|destroyed|error → provisioning → running, with a fresh runtime. A
   * sandbox whose runtime (and workspace) is gone but that has a verified
   * checkpoint is restored from it; otherwise sandboxd clones, or reuses the
   * workspace the provider kept.
   */
  private async provision(
    record: SandboxRecord,
    operationId: string,
    progress: Progress,
  ): Promise<SandboxRecord> {
    const provider = this.deps.provider(record.provider);
    const checkpoint = record.checkpoint?.verified ? record.checkpoint : null;
    // A damaged checkpoint is refused before anything starts (never restored).
    const manifest = checkpoint ? await this.verifiedManifest(record, checkpoint.id) : null;
    progress.step("provisioning");
    let current = await this.move(record, "provisioning", operationId, "launch", { error: null });
    await this.at("launch.provisioning");
    const spec = this.spec(current, await this.deps.authEntries());
    let handle: RuntimeHandle | null = current.runtime?.handle ?? null;
    try {
      if (handle) await provider.stop(handle).catch(() => {});
      handle = await provider.create(spec);
      await this.at("launch.runtime_created");
      const restore = manifest !== null && !(await provider.hasWorkspace(handle));
      // The host's credential helper is a process of its own: asked while sandboxd starts.
      const credentials = restore ? null : this.deps.credentialsFor(current.repo).then((c) => c ?? undefined);
      credentials?.catch(() => {});
      current = await this.update(current, { runtime: { handle, web_url: null } });
      // Told what comes next, a provider can start OpenCode with sandboxd (never before a restore).
      handle = await provider.start(handle, spec, restore ? undefined : { init_repo: current.repo });
      await this.at("launch.runtime_started");
      const endpoint = await provider.endpoint(handle);
      if (!endpoint) throw new AlpineError("agent_start_failed", "the sandbox runtime did not start");
      current = await this.update(current, { runtime: { handle, web_url: endpoint.url } });
      const client = this.deps.connect(endpoint);
      // Phases arrive on sandboxd's stream; a fault point here stops this process mid-stream.
      const onPhase = (phase: string) => {
        if (phase === "cloning") void this.at("launch.cloning");
        if (phase === "starting_agent") {
          progress.step("starting agent");
          void this.at("launch.agent_starting");
        }
      };
      let status: SandboxdStatusView;
      if (restore && manifest) {
        progress.step(`restoring checkpoint ${manifest.checkpoint_id}`);
        await this.at("launch.restoring");
        for (const artifact of manifest.artifacts) {
          const body = await this.deps.checkpoints.getArtifact(
            record.id,
            manifest.checkpoint_id,
            artifact.name,
          );
          await client.putRestoreArtifact(artifact.name, body);
        }
        status = await client.restore({ manifest, repo: current.repo, branch: current.branch }, onPhase);
      } else {
        progress.step("cloning");
        status = await client.init(
          {
            repo: current.repo,
            ref: current.ref ?? undefined,
            branch: current.branch,
            credentials: await credentials!,
          },
          onPhase,
        );
      }
      return await this.move(
        current,
        "running",
        operationId,
        restore ? `restored ${manifest?.checkpoint_id}` : "runtime ready",
        {
          agent: status.agent.state,
          last_activity: status.agent.last_activity ?? this.now(),
        },
      );
    } catch (err) {
      const error = toAlpineError(err);
      if (handle) await provider.stop(handle).catch(() => {});
      const latest = (await this.deps.store.get(record.name)) ?? current;
      await this.move(latest, "error", operationId, `launch failed: ${error.reason}`, {
        error: error.toJSON(),
      });
      throw error;
    }
  }

  /** The manifest of a checkpoint, re-verified against its stored artifacts. */
  private async verifiedManifest(record: SandboxRecord, checkpointId: string): Promise<CheckpointManifest> {
    const manifest = await this.deps.checkpoints.getManifest(record.id, checkpointId);
    if (!manifest) {
      throw new AlpineError(
        "checkpoint_missing",
        `checkpoint ${checkpointId} of '${record.name}' is not in the store`,
        {
          checkpoint_id: checkpointId,
        },
      );
    }
    await this.deps.checkpoints.verify(manifest);
    return manifest;
  }

  private async sendTask(
    record: SandboxRecord,
    prompt: string,
    operationId: string,
  ): Promise<{ record: SandboxRecord; session_id: string }> {
    const client = await this.connect(record);
    const { session_id } = await client.task({ prompt, session_id: record.task?.session_id ?? undefined });
    const at = this.now();
    const task = { prompt_summary: summarise(prompt), session_id, started_at: at, finished_at: null };
    const next =
      record.state === "completed"
        ? await this.move(record, "running", operationId, "new task", {
            task,
            agent: "busy",
            last_activity: at,
          })
        : await this.update(record, { task, agent: "busy", last_activity: at });
    return { record: next, session_id };
  }

  async task(name: string, prompt: string): Promise<{ record: SandboxRecord; session_id: string }> {
    const record = await this.get(name);
    if (!prompt.trim()) throw new AlpineError("usage_invalid", "the task prompt is empty");
    return this.withLease(record, "task", async (op) => {
      const current = await this.get(name);
      if (current.state !== "running" && current.state !== "completed") {
        throw new AlpineError(
          "sandbox_not_running",
          `sandbox '${name}' is ${current.state}; it cannot take a task`,
          {
            state: current.state,
          },
        );
      }
      return this.sendTask(current, prompt, op.id);
    });
  }

  /**
   * Brings the record in line with what sandboxd observed: a task that
   * finished without error moves running → completed (DESIGN §2); a failed
   * task leaves the sandbox running with the agent in `error`. Skipped (not an
   * error) while another operation holds the lease.
   */
  async reconcile(given: SandboxRecord, probe: Probe): Promise<SandboxRecord> {
    // First what a command that died mid-way left behind (a no-op for everything else).
    const record = await this.settle(given);
    if (probe.state !== "ok" || !probe.status) return record;
    const status = probe.status;
    const sameTask =
      record.task !== null && status.task !== null && status.task.session_id === record.task.session_id;
    const agentIdle = status.agent.state !== "busy" && status.agent.state !== "retry";
    const finished =
      record.state === "running" && sameTask && status.task?.state === "completed" && agentIdle;
    const agentChanged =
      status.agent.state !== record.agent || status.agent.last_activity !== record.last_activity;
    if (!finished && !agentChanged) return record;
    try {
      return await this.withLease(record, "reconcile", async (op) => {
        const current = await this.get(record.name);
        const patch: Partial<SandboxRecord> = {
          agent: status.agent.state,
          last_activity: status.agent.last_activity ?? current.last_activity,
        };
        if (finished && current.state === "running" && current.task) {
          const task = { ...current.task, finished_at: status.task?.finished_at ?? this.now() };
          return this.move(current, "completed", op.id, "task completed", { ...patch, task });
        }
        return this.update(current, patch);
      });
    } catch (err) {
      if (err instanceof AlpineError && err.reason === "operation_in_progress") return record;
      throw err;
    }
  }

  /** Waits until the current task finishes; the sandbox is then completed (or task_failed is thrown). */
  async waitForTask(
    name: string,
    opts: { pollMs?: number; timeoutMs?: number } = {},
  ): Promise<SandboxRecord> {
    const deadline = this.deps.clock.now() + (opts.timeoutMs ?? 24 * 3600_000);
    for (;;) {
      let record = await this.get(name);
      const probe = await this.probe(record);
      if (probe.state === "unavailable")
        throw probe.error ?? new AlpineError("sandbox_unavailable", "unavailable");
      record = await this.reconcile(record, probe);
      const task = probe.status?.task;
      if (task && record.task && task.session_id === record.task.session_id && task.state === "failed") {
        throw new AlpineError("task_failed", `the agent's task failed in sandbox '${name}'`, {
          session_id: task.session_id,
          error: task.error ?? null,
        });
      }
      if (record.state !== "running") return record;
      if (this.deps.clock.now() > deadline) return record;
      await this.deps.clock.sleep(opts.pollMs ?? 500);
    }
  }

  /**
   * Whether the workspace holds work that is neither in the latest verified
   * checkpoint nor in the latest export (compared by content: git tree hashes).
   */
  hasUnsavedWork(record: SandboxRecord, workspace: SandboxdStatusView["workspace"]): boolean {
    if (!workspace) return false;
    if (!workspace.dirty && workspace.ahead === 0) return false;
    const tree = workspace.tree_hash;
    if (tree === null) return true;
    if (record.checkpoint?.verified && record.checkpoint.tree_hash === tree) return false;
    if (record.export?.tree_hash === tree) return false;
    return true;
  }

  /** Why a teardown without --force would not go ahead right now (DESIGN §3). */
  blockers(record: SandboxRecord, probe: Probe, lease: { type: string } | null): string[] {
    const blockers: string[] = [];
    if (lease) blockers.push("operation_in_progress");
    const status = probe.status;
    if (status) {
      if (
        status.agent.state === "busy" ||
        status.agent.state === "retry" ||
        status.task?.state === "running"
      ) {
        blockers.push("agent_busy");
      }
      if (this.hasUnsavedWork(record, status.workspace)) blockers.push("unsaved_changes");
    } else if (LIVE_STATES.includes(record.state) || probe.kept_workspace) {
      blockers.push("runtime_unreachable");
    }
    return blockers;
  }

  async checkpoint(
    name: string,
    progress: Progress = silentProgress,
  ): Promise<{ record: SandboxRecord; manifest: CheckpointManifest }> {
    const record = await this.get(name);
    return this.withLease(record, "checkpoint", async (op) => {
      await this.at("checkpoint.lease_acquired");
      const current = await this.get(name);
      if (current.state !== "running" && current.state !== "completed") {
        throw new AlpineError(
          "sandbox_not_running",
          `sandbox '${name}' is ${current.state}; only a live sandbox can be checkpointed`,
          {
            state: current.state,
          },
        );
      }
      return this.saveCheckpoint(current, op.id, current.state, progress);
    });
  }

  /**
   * running|completed → saving → `then`: has sandboxd write a checkpoint,
   * copies its artifacts into the checkpoint store, re-reads and verifies
   * them, and only then records it as the sandbox's verified checkpoint.
   * A failure leaves the previous verified checkpoint in place.
   */
  private async saveCheckpoint(
    record: SandboxRecord,
    operationId: string,
    then: SandboxState,
    progress: Progress,
  ): Promise<{ record: SandboxRecord; manifest: CheckpointManifest }> {
    const back = record.state;
    const client = await this.connect(record);
    let current = await this.move(record, "saving", operationId, "checkpoint");
    await this.at("checkpoint.saving");
    const checkpointId = `ckpt_${this.deps.ids.operationId().replace(/^op_/, "")}`;
    const created_at = this.now();
    const store = this.deps.checkpoints;
    try {
      progress.step("writing checkpoint");
      const manifest = await client.checkpoint({ checkpoint_id: checkpointId, created_at });
      if (manifest.checkpoint_id !== checkpointId || manifest.sandbox_id !== record.id) {
        throw new AlpineError("checkpoint_failed", "sandboxd returned a manifest for another checkpoint", {});
      }
      await this.at("checkpoint.written");
      progress.step("copying checkpoint");
      let bytes = 0;
      for (const artifact of manifest.artifacts) {
        const stored = await store.putArtifact(
          record.id,
          checkpointId,
          artifact.name,
          await client.checkpointArtifact(checkpointId, artifact.name),
        );
        if (stored.sha256 !== artifact.sha256 || stored.bytes !== artifact.bytes) {
          throw new AlpineError(
            "checkpoint_checksum_mismatch",
            `checkpoint artifact ${artifact.name} changed in transit`,
            { artifact: artifact.name, expected: artifact.sha256, got: stored.sha256 },
          );
        }
        bytes += stored.bytes;
        await this.at("checkpoint.artifact_stored");
      }
      await store.putManifest(manifest);
      await this.at("checkpoint.manifest_stored");
      progress.step("verifying checkpoint");
      await store.verify(manifest);
      await this.at("checkpoint.verified");
      await client.deleteCheckpoint(checkpointId).catch(() => {});
      const checkpoint: CheckpointRecord = {
        id: checkpointId,
        verified: true,
        content_hash: await contentHash(manifest),
        tree_hash: manifest.tree_hash,
        head_commit: manifest.head_commit,
        bytes,
        created_at,
      };
      current = await this.move(current, then, operationId, `checkpoint ${checkpointId} verified`, {
        checkpoint,
      });
      await this.applyRetention(record.id, checkpointId);
      return { record: current, manifest };
    } catch (err) {
      await store.delete(record.id, checkpointId).catch(() => {});
      await client.deleteCheckpoint(checkpointId).catch(() => {});
      const error = toAlpineError(err);
      await this.move(current, back, operationId, `checkpoint failed: ${error.reason}`);
      if (error.reason === "internal_error" || error.reason === "sandbox_unavailable") {
        throw new AlpineError(
          "checkpoint_failed",
          `checkpoint of '${record.name}' failed: ${error.message}`,
          {
            cause: error.toJSON(),
          },
        );
      }
      throw error;
    }
  }

  /** Keeps the newest `durability.keep_checkpoints` checkpoints of a sandbox. */
  private async applyRetention(sandboxId: string, keepId: string): Promise<void> {
    const ids = await this.deps.checkpoints.list(sandboxId);
    const excess = ids.length - this.deps.config.durability.keep_checkpoints;
    for (const id of ids.slice(0, Math.max(0, excess))) {
      if (id !== keepId) await this.deps.checkpoints.delete(sandboxId, id).catch(() => {});
    }
  }

  async teardown(
    name: string,
    opts: { force: boolean },
    progress: Progress = silentProgress,
  ): Promise<{ record: SandboxRecord; destroyed: boolean; checkpoint_id: string | null }> {
    const record = await this.get(name);
    return this.withLease(record, "teardown", async (op) => {
      await this.at("teardown.lease_acquired");
      let current = await this.get(name);
      if (current.state === "destroyed") {
        return { record: current, destroyed: false, checkpoint_id: current.checkpoint?.id ?? null };
      }
      let checkpointId: string | null = null;
      if (!opts.force) {
        const probe = await this.probe(current);
        const blockers = this.blockers(current, probe, null);
        if (blockers.includes("agent_busy")) {
          throw new AlpineError(
            "teardown_requires_force",
            `the agent in '${name}' is busy; pass --force to stop it anyway`,
            {
              blockers,
            },
          );
        }
        const workspace = probe.status?.workspace;
        const unsaved = {
          unsaved_files: workspace?.changed_files.map((f) => f.path) ?? [],
          unsaved_commits: workspace?.ahead ?? 0,
        };
        if (blockers.includes("runtime_unreachable")) {
          throw new AlpineError(
            "teardown_blocked",
            `sandbox '${name}' does not answer, so its work cannot be saved; run \`alpine launch ${name}\` to recover it, or pass --force to drop it`,
            { blockers, ...unsaved, last_checkpoint: current.checkpoint?.id ?? null },
          );
        }
        if (blockers.includes("unsaved_changes")) {
          try {
            const saved = await this.saveCheckpoint(current, op.id, "tearing_down", progress);
            current = saved.record;
            checkpointId = saved.manifest.checkpoint_id;
            await this.at("teardown.checkpointed");
          } catch (err) {
            const error = toAlpineError(err);
            throw new AlpineError(
              "teardown_blocked",
              `sandbox '${name}' holds unsaved work and checkpointing it failed (${error.message}); nothing was destroyed`,
              { blockers, ...unsaved, cause: error.toJSON() },
            );
          }
        }
      }
      progress.step("tearing down");
      if (current.state === "new" || current.state === "provisioning") {
        current = await this.move(current, "error", op.id, "teardown of an unfinished launch");
      }
      if (current.state !== "tearing_down") {
        current = await this.move(
          current,
          "tearing_down",
          op.id,
          opts.force ? "teardown --force" : "teardown",
        );
      }
      await this.at("teardown.tearing_down");
      try {
        if (current.runtime) {
          const provider = this.deps.provider(current.provider);
          const endpoint = await provider.endpoint(current.runtime.handle).catch(() => null);
          if (endpoint)
            await this.deps
              .connect(endpoint)
              .shutdown()
              .catch(() => {});
          await provider.stop(current.runtime.handle);
          await this.at("teardown.runtime_stopped");
          await provider.destroy(current.runtime.handle);
          await this.at("teardown.runtime_destroyed");
        }
      } catch (err) {
        const error = toAlpineError(err);
        await this.move(current, "error", op.id, `teardown failed: ${error.reason}`, {
          error: error.toJSON(),
        });
        throw error;
      }
      current = await this.move(current, "destroyed", op.id, "runtime removed", {
        runtime: null,
        agent: "unknown",
        error: null,
      });
      return {
        record: current,
        destroyed: true,
        checkpoint_id: checkpointId ?? current.checkpoint?.id ?? null,
      };
    });
  }

  /**
   * Commits the sandbox's work onto a branch and pushes it (or only makes a
   * patch), from the live workspace or, when the runtime is gone, from the
   * latest verified checkpoint (DESIGN §3). Holds the export lease throughout.
   */
  async export(name: string, input: ExportInput, progress: Progress = silentProgress): Promise<ExportResult> {
    const record = await this.get(name);
    // Only while the operation that is saving or tearing it down lives: a dead one's state is
    // settled once this export holds the lease.
    if ((record.state === "saving" || record.state === "tearing_down") && (await this.activeLease(name))) {
      throw new AlpineError(
        "export_retryable_state",
        `sandbox '${name}' is ${record.state}; retry when it settles`,
        {
          state: record.state,
        },
      );
    }
    const branch = validateBranchName(input.branch ?? record.branch);
    const push = !input.patch;
    const result = await this.withLease(record, "export", async (op) => {
      await this.at("export.lease_acquired");
      let current = await this.get(name);
      if (current.state === "saving" || current.state === "tearing_down") {
        throw new AlpineError(
          "export_retryable_state",
          `sandbox '${name}' is ${current.state}; retry when it settles`,
          {
            state: current.state,
          },
        );
      }
      const live = (current.state === "running" || current.state === "completed") && !input.from_checkpoint;
      if (!live && current.state !== "destroyed" && !input.from_checkpoint) {
        throw new AlpineError(
          "export_state_blocked",
          `sandbox '${name}' is ${current.state}; export works from a running, completed or destroyed sandbox`,
          { state: current.state },
        );
      }
      let credentials: GitCredentials | undefined;
      if (push) {
        credentials = (await this.deps.credentialsFor(current.repo)) ?? undefined;
        if (!credentials && this.deps.requiresAuth(current.repo)) {
          throw new AlpineError(
            "github_auth_missing",
            `no credentials for ${current.repo}; set GITHUB_TOKEN or GH_TOKEN, or configure a git credential helper`,
            { repo: current.repo },
          );
        }
      }
      const author = await this.deps.gitAuthor();
      let work: WorkExport;
      let source: "workspace" | "checkpoint";
      if (live) {
        source = "workspace";
        const client = await this.connect(current);
        const status = await client.status();
        const files = status.workspace?.changed_files.map((f) => f.path) ?? [];
        const message = exportMessage(current.task?.prompt_summary ?? null, name, files);
        progress.step(push ? `pushing ${branch}` : "making the patch");
        work = await client.export({ branch, message, author, push, credentials });
        if (!push) {
          const diff = await client.diff({ stat: false });
          work = { ...work, patch: diff.patch ?? "" };
        }
      } else {
        source = "checkpoint";
        const checkpoint = current.checkpoint?.verified ? current.checkpoint : null;
        if (!checkpoint) {
          throw new AlpineError(
            "checkpoint_missing",
            `sandbox '${name}' has no verified checkpoint to export from`,
            {
              state: current.state,
            },
          );
        }
        const manifest = await this.verifiedManifest(current, checkpoint.id);
        progress.step(push ? `pushing ${branch} from checkpoint ${checkpoint.id}` : "making the patch");
        work = await this.deps.checkpointExporter.export(manifest, {
          repo: current.repo,
          branch,
          message: exportMessage(current.task?.prompt_summary ?? null, name, []),
          author,
          push,
          patch: !push,
          credentials,
        });
      }
      await this.at("export.pushed");
      let prUrl: string | null = null;
      const exportedAt = this.now();
      const exportRecord: ExportRecord = {
        branch,
        commit: work.commit,
        tree_hash: work.tree_hash,
        remote: work.remote,
        pushed_at: work.pushed ? exportedAt : null,
        pr_url: null,
        patch_file: null,
        exported_at: exportedAt,
      };
      current = await this.update(current, { export: exportRecord });
      await this.at("export.recorded");
      if (input.pr && work.pushed) {
        progress.step("opening the pull request");
        try {
          const pr = await this.deps.pullRequests.open({
            repo: current.repo,
            head: branch,
            base: current.ref,
            title: current.task?.prompt_summary || `alpine: ${name}`,
            body: `Work of the alpine sandbox \`${name}\` (${work.files_changed} files changed, +${work.insertions} −${work.deletions}).`,
            credentials: credentials ?? null,
          });
          prUrl = pr.url;
          current = await this.update(current, { export: { ...exportRecord, pr_url: prUrl } });
        } catch (err) {
          const error = toAlpineError(err);
          throw error.reason === "internal_error"
            ? new AlpineError(
                "pr_failed",
                `branch ${branch} was pushed, but the pull request failed: ${error.message}`,
                {
                  branch,
                  commit: work.commit,
                },
              )
            : error;
        }
      }
      await this.deps.store.appendEvents([
        {
          sandbox_id: current.id,
          name,
          at: exportedAt,
          kind: "note",
          from: null,
          to: null,
          operation_id: op.id,
          reason: work.pushed
            ? `exported ${work.commit.slice(0, 12)} to ${branch}${prUrl ? ` (${prUrl})` : ""}`
            : "exported a patch",
        },
      ]);
      return {
        record: current,
        work,
        source,
        pr_url: prUrl,
        checkpoint_id: source === "checkpoint" ? (current.checkpoint?.id ?? null) : null,
        auto_tore_down: false,
        exported_at: exportedAt,
      };
    });
    // A completed sandbox whose work is now pushed goes at once when there is no retention period.
    const { sandbox } = this.deps.config;
    if (
      result.work.pushed &&
      result.record.state === "completed" &&
      sandbox.auto_teardown &&
      sandbox.completed_retention_minutes === 0
    ) {
      const torn = await this.teardown(name, { force: false }, progress).catch(() => null);
      if (torn?.destroyed) return { ...result, record: torn.record, auto_tore_down: true };
    }
    return result;
  }

  /** Removes completed sandboxes whose work is saved, after the retention period (DESIGN §3). */
  async gc(opts: {
    dryRun: boolean;
  }): Promise<{ torn_down: string[]; kept: { name: string; reason: string }[] }> {
    const { config } = this.deps;
    const tornDown: string[] = [];
    const kept: { name: string; reason: string }[] = [];
    for (const record of await this.deps.store.list()) {
      if (record.state !== "completed") continue;
      if (!config.sandbox.auto_teardown) {
        kept.push({ name: record.name, reason: "auto_teardown is off" });
        continue;
      }
      const finished = Date.parse(record.task?.finished_at ?? record.updated_at);
      const dueAt = finished + config.sandbox.completed_retention_minutes * 60_000;
      if (this.deps.clock.now() < dueAt) {
        kept.push({ name: record.name, reason: `retained until ${new Date(dueAt).toISOString()}` });
        continue;
      }
      const probe = await this.probe(record);
      const blockers = this.blockers(record, probe, await this.activeLease(record.name));
      if (blockers.length > 0) {
        kept.push({ name: record.name, reason: blockers.join(", ") });
        continue;
      }
      if (opts.dryRun) {
        tornDown.push(record.name);
        continue;
      }
      try {
        await this.teardown(record.name, { force: false });
        tornDown.push(record.name);
      } catch (err) {
        kept.push({ name: record.name, reason: toAlpineError(err).reason });
      }
    }
    if (!opts.dryRun) {
      // Runtimes a provider keeps outside any sandbox (warm pools) are tidied here too.
      for (const kind of ["local", "docker", "cloudflare"] as const) {
        try {
          await this.deps.provider(kind).collect?.();
        } catch {
          // a provider that is not available here has nothing to collect
        }
      }
    }
    return { torn_down: tornDown, kept };
  }
}

/** An export commit's message: the task's first line, then the files it touched. */
export function exportMessage(task: string | null, name: string, files: string[]): string {
  const subject = task?.trim() ? task.trim() : `Work from alpine sandbox ${name}`;
  const list = files.slice(0, 50).map((f) => `- ${f}`);
  if (files.length > 50) list.push(`- … and ${files.length - 50} more`);
  return [
    subject,
    "",
    `Exported by alpine from sandbox ${name}.`,
    ...(list.length ? ["", "Files changed:", ...list] : []),
  ].join("\n");
}

/** A hash of a checkpoint's content (workspace tree, history head, branch), not of its metadata. */
export async function contentHash(manifest: CheckpointManifest): Promise<string> {
  const text = `tree ${manifest.tree_hash}\nhead ${manifest.head_commit}\nbranch ${manifest.branch}\n`;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return `sha256:${[...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The first line of a prompt, shortened, for records and commit messages. */
export function summarise(prompt: string): string {
  const first = prompt.trim().split("\n")[0] ?? "";
  return first.length > 120 ? `${first.slice(0, 117)}...` : first;
}
