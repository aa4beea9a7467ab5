import type { AlpineConfig } from "./config.ts";
import { AlpineError, type ErrorJson, toAlpineError } from "./errors.ts";
import { acquireLease, type HeldLease, type OperationType, staleReason } from "./leases.ts";
import { type SandboxState, transition } from "./lifecycle.ts";
import { validateName } from "./names.ts";
import type {
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
import type { AgentState, ProviderKind, SandboxRecord, StoredEvent } from "./schemas.ts";

/** What the orchestrator needs from a sandboxd (SandboxdClient implements it). */
export interface SandboxdStatusView {
  phase: string;
  error: ErrorJson | null;
  workspace: {
    branch: string;
    head: string | null;
    dirty: boolean;
    changed_files: { path: string; status: string }[];
    ahead: number;
  } | null;
  agent: { state: AgentState; last_activity: string | null; session_id: string | null };
  task: { session_id: string; state: "running" | "completed" | "failed"; finished_at: string | null } | null;
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
  connect(endpoint: RuntimeEndpoint): SandboxdApi;
  /** Host credentials for a remote (git credential fill / GITHUB_TOKEN); null when none. */
  credentialsFor(repo: string): Promise<GitCredentials | null>;
  /** OpenCode auth.json entries for `opencode.auth_providers`. */
  authEntries(): Promise<Record<string, unknown>>;
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
}

const LIVE_STATES: readonly SandboxState[] = ["running", "completed", "saving"];

/**
 * The one place where lifecycle rules, leases and safety live. The CLI and the
 * Durable Object both drive sandboxes through this class.
 */
export class Orchestrator {
  constructor(private readonly deps: OrchestratorDeps) {}

  private now(): string {
    return new Date(this.deps.clock.now()).toISOString();
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

  /** Asks the sandbox's sandboxd how it is. Never throws. */
  async probe(record: SandboxRecord): Promise<Probe> {
    const at = this.now();
    if (!LIVE_STATES.includes(record.state) || !record.runtime) {
      return { state: "not_running", at: null, status: null, error: null };
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
      const status = await this.deps.connect(endpoint).status();
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
      return await fn({ id: operationId, lease });
    } finally {
      await lease.release();
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
      const at = this.now();
      const created: SandboxRecord = {
        id: this.deps.ids.sandboxId(),
        name,
        provider: input.provider ?? config.sandbox.provider,
        repo: input.repo,
        ref: input.ref ?? null,
        branch: `${config.github.branch_prefix}/${name}`,
        image_profile: profile,
        state: "new",
        created_at: at,
        updated_at: at,
        last_activity: null,
        agent: "unknown",
        runtime: null,
        task: null,
        error: null,
        version: 1,
      };
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
      let current = await this.get(name);
      let reused = false;
      const resumed = current.state === "destroyed" || current.state === "error";

      if (current.state === "running" || current.state === "completed") {
        const probe = await this.probe(current);
        if (probe.state === "ok" && probe.status?.phase === "ready") {
          reused = true;
        } else {
          current = await this.move(current, "error", op.id, "runtime unavailable; recovering", {
            error: (probe.error ?? new AlpineError("sandbox_unavailable", "runtime not ready")).toJSON(),
          });
        }
      } else if (
        current.state === "provisioning" ||
        current.state === "saving" ||
        current.state === "tearing_down"
      ) {
        // Only reachable when the command that held the lease died mid-way (we hold the lease now).
        current = await this.move(current, "error", op.id, `previous ${current.state} was interrupted`);
      }

      if (!reused) {
        current = await this.provision(current, op.id, progress);
      }

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

  /** new|destroyed|error → provisioning → running, with a fresh runtime. */
  private async provision(
    record: SandboxRecord,
    operationId: string,
    progress: Progress,
  ): Promise<SandboxRecord> {
    const provider = this.deps.provider(record.provider);
    progress.step("provisioning");
    let current = await this.move(record, "provisioning", operationId, "launch", { error: null });
    const spec = this.spec(current, await this.deps.authEntries());
    let handle: RuntimeHandle | null = current.runtime?.handle ?? null;
    try {
      if (handle) await provider.stop(handle).catch(() => {});
      handle = await provider.create(spec);
      current = await this.update(current, { runtime: { handle, web_url: null } });
      handle = await provider.start(handle, spec);
      const endpoint = await provider.endpoint(handle);
      if (!endpoint) throw new AlpineError("agent_start_failed", "the sandbox runtime did not start");
      current = await this.update(current, { runtime: { handle, web_url: endpoint.url } });
      const credentials = (await this.deps.credentialsFor(current.repo)) ?? undefined;
      progress.step("cloning");
      const status = await this.deps
        .connect(endpoint)
        .init(
          { repo: current.repo, ref: current.ref ?? undefined, branch: current.branch, credentials },
          (phase) => {
            if (phase === "starting_agent") progress.step("starting agent");
          },
        );
      return await this.move(current, "running", operationId, "runtime ready", {
        agent: status.agent.state,
        last_activity: status.agent.last_activity ?? this.now(),
      });
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
   * Brings the record in line with what sandboxd observed: a finished task moves
   * running → completed. Skipped (not an error) while another operation holds the lease.
   */
  async reconcile(record: SandboxRecord, probe: Probe): Promise<SandboxRecord> {
    if (probe.state !== "ok" || !probe.status) return record;
    const status = probe.status;
    const finished =
      record.state === "running" &&
      record.task !== null &&
      status.task !== null &&
      status.task.session_id === record.task.session_id &&
      status.task.state !== "running" &&
      status.agent.state !== "busy" &&
      status.agent.state !== "retry";
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
          return this.move(current, "completed", op.id, `task ${status.task?.state}`, { ...patch, task });
        }
        return this.update(current, patch);
      });
    } catch (err) {
      if (err instanceof AlpineError && err.reason === "operation_in_progress") return record;
      throw err;
    }
  }

  /** Waits until the current task finishes; moves the sandbox to completed. */
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
      if (record.state === "completed" || (task && task.state !== "running" && record.state !== "running")) {
        if (task?.state === "failed") {
          throw new AlpineError("task_failed", `the agent's task failed in sandbox '${name}'`, {
            session_id: task.session_id,
          });
        }
        return record;
      }
      if (record.state !== "running") return record;
      if (this.deps.clock.now() > deadline) return record;
      await this.deps.clock.sleep(opts.pollMs ?? 500);
    }
  }

  /** Why a teardown without --force would not go ahead right now. */
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
      if (status.workspace && (status.workspace.dirty || status.workspace.ahead > 0)) {
        blockers.push("unsaved_changes");
      }
    } else if (LIVE_STATES.includes(record.state)) {
      blockers.push("runtime_unreachable");
    }
    return blockers;
  }

  async teardown(
    name: string,
    opts: { force: boolean },
    progress: Progress = silentProgress,
  ): Promise<{ record: SandboxRecord; destroyed: boolean; checkpoint_id: string | null }> {
    const record = await this.get(name);
    return this.withLease(record, "teardown", async (op) => {
      let current = await this.get(name);
      if (current.state === "destroyed") return { record: current, destroyed: false, checkpoint_id: null };
      if (!opts.force) {
        const probe = await this.probe(current);
        const blockers = this.blockers(current, probe, null);
        if (blockers.includes("agent_busy")) {
          throw new AlpineError(
            "teardown_requires_force",
            `the agent in '${name}' is busy; pass --force to stop it anyway`,
            { blockers },
          );
        }
        const workspace = probe.status?.workspace;
        if (blockers.includes("unsaved_changes") || blockers.includes("runtime_unreachable")) {
          // Checkpointed teardown lands with the durability work; until then unsaved work blocks.
          throw new AlpineError(
            "teardown_blocked",
            `sandbox '${name}' holds work that is not saved anywhere; export it first, or pass --force to drop it`,
            {
              blockers,
              unsaved_files: workspace?.changed_files.map((f) => f.path) ?? [],
              unsaved_commits: workspace?.ahead ?? 0,
            },
          );
        }
      }
      progress.step("tearing down");
      if (current.state === "new" || current.state === "provisioning") {
        current = await this.move(current, "error", op.id, "teardown of an unfinished launch");
      }
      current = await this.move(current, "tearing_down", op.id, opts.force ? "teardown --force" : "teardown");
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
          await provider.destroy(current.runtime.handle);
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
      });
      return { record: current, destroyed: true, checkpoint_id: null };
    });
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
    return { torn_down: tornDown, kept };
  }
}

/** The first line of a prompt, shortened, for records and commit messages. */
export function summarise(prompt: string): string {
  const first = prompt.trim().split("\n")[0] ?? "";
  return first.length > 120 ? `${first.slice(0, 117)}...` : first;
}
