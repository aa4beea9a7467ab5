import {
  AlpineError,
  type CheckpointManifest,
  type SandboxdApi,
  type SandboxdStatusView,
  sandboxdApi,
  type WorkExport,
} from "../../src/index.ts";
import { fakeSha, readAll, sha256Hex, streamOf } from "./bytes.ts";

type Workspace = NonNullable<SandboxdStatusView["workspace"]>;
type Method = keyof SandboxdApi;

/**
 * A sandboxd in memory: a workspace (clean after init), an agent that takes tasks, checkpoints
 * whose artifacts are real bytes with real sha256s, a restore that checks what was staged, and an
 * export. `fail` makes a method throw; `tamper` changes an artifact's bytes in transit.
 */
export class FakeSandboxd implements SandboxdApi {
  readonly calls: Method[] = [];
  readonly fail = new Map<Method, Error>();
  phase: sandboxdApi.SandboxdPhase = "booting";
  workspace: Workspace | null = null;
  agent: SandboxdStatusView["agent"] = { state: "idle", last_activity: null, session_id: null };
  task_: SandboxdStatusView["task"] = null;
  /** Checkpoints sandboxd wrote and keeps until deleted: id → artifact bytes. */
  readonly written = new Map<string, Map<string, Uint8Array>>();
  readonly staged = new Map<string, Uint8Array>();
  restoredFrom: CheckpointManifest | null = null;
  /** The chain the last restore was given (checkpoint ids, oldest first). */
  restoredChain: string[] = [];
  /** The remote's credentials the last restore was given (for a checkpoint that builds on upstream). */
  restoredWithCredentials: sandboxdApi.RestoreRequest["credentials"] | null = null;
  /** Every checkpoint request, as received. */
  readonly checkpointRequests: sandboxdApi.CheckpointRequest[] = [];
  readonly inits: sandboxdApi.InitRequest[] = [];
  readonly exports: sandboxdApi.ExportRequest[] = [];
  tamper: string | null = null;
  /** The environment's setup fails with this after the checkout (phase failed, kept for inspection). */
  setupFailure: AlpineError | null = null;
  error: SandboxdStatusView["error"] = null;
  /** The checkpoint written on SIGTERM (`sigterm`), held until the control plane deletes it. */
  exitCheckpoint: CheckpointManifest | null = null;
  private sessions = 0;

  constructor(
    readonly sandboxId: string,
    readonly name: string,
  ) {}

  private call(method: Method): void {
    this.calls.push(method);
    const error = this.fail.get(method);
    if (error) throw error;
  }

  async status(): Promise<SandboxdStatusView> {
    this.call("status");
    return this.snapshot();
  }

  async health(): Promise<{ ok: true; phase: sandboxdApi.SandboxdPhase }> {
    this.call("health");
    return { ok: true, phase: this.phase };
  }

  /** What sandboxd started with `exit_checkpoint` does on SIGTERM with unsaved work. */
  async sigterm(checkpointId = "ckpt_exit_1"): Promise<CheckpointManifest> {
    this.exitCheckpoint = await this.checkpoint({
      checkpoint_id: checkpointId,
      created_at: "2026-01-01T00:10:00.000Z",
    });
    this.calls.pop();
    return this.exitCheckpoint;
  }

  private snapshot(): SandboxdStatusView {
    const held = this.exitCheckpoint && this.written.has(this.exitCheckpoint.checkpoint_id);
    return {
      ...(held ? { exit_checkpoint: structuredClone(this.exitCheckpoint!) } : {}),
      sandbox_id: this.sandboxId,
      name: this.name,
      phase: this.phase,
      error: this.error ? { ...this.error } : null,
      workspace: this.workspace ? structuredClone(this.workspace) : null,
      agent: { ...this.agent },
      task: this.task_ ? { ...this.task_ } : null,
      opencode: { version: "1.0.0", pid: 7, restarts: 0, ready: this.phase === "ready", started_at: null },
    };
  }

  async init(
    body: sandboxdApi.InitRequest,
    onPhase?: (phase: sandboxdApi.SandboxdPhase) => void,
  ): Promise<SandboxdStatusView> {
    this.call("init");
    this.inits.push(structuredClone(body));
    onPhase?.("cloning");
    // A workspace the provider kept is adopted as it is.
    if (!this.workspace) {
      const base = fakeSha(`base:${body.repo}`);
      this.workspace = {
        repo: body.repo,
        branch: body.branch ?? "alpine/x",
        base_commit: base,
        head: base,
        dirty: false,
        changed_files: [],
        ahead: 0,
        tree_hash: fakeSha(`tree:${body.repo}`),
      };
    }
    if (this.setupFailure) {
      onPhase?.("setting_up");
      this.phase = "failed";
      this.error = this.setupFailure.toJSON();
      throw this.setupFailure;
    }
    onPhase?.("starting_agent");
    this.phase = "ready";
    return this.snapshot();
  }

  /** The agent changes a file (the workspace becomes dirty with a new tree). */
  edit(path: string): void {
    if (!this.workspace) throw new Error("no workspace");
    this.workspace.dirty = true;
    this.workspace.changed_files.push({ path, status: "modified" });
    this.workspace.tree_hash = fakeSha(`tree:${this.workspace.changed_files.map((f) => f.path).join(",")}`);
  }

  /** The session a task naming none continues, as sandboxd keeps it (the person's last used). */
  conversation: string | null = null;
  lastTaskBody: sandboxdApi.TaskRequest | null = null;

  async task(body: sandboxdApi.TaskRequest): Promise<sandboxdApi.TaskResponse> {
    this.call("task");
    this.lastTaskBody = body;
    const session_id =
      body.session_id ??
      (body.new_session ? null : (this.conversation ?? body.fallback_session_id ?? null)) ??
      `ses_${++this.sessions}`;
    this.conversation = session_id;
    this.agent = { state: "busy", last_activity: "2026-01-01T00:00:01.000Z", session_id };
    this.task_ = {
      session_id,
      prompt_summary: body.prompt.slice(0, 20),
      state: "running",
      started_at: "2026-01-01T00:00:01.000Z",
      finished_at: null,
      error: null,
    };
    return { session_id, accepted: true };
  }

  /** The running task ends; the agent goes idle (or to error when it failed). */
  finishTask(state: "completed" | "failed" = "completed", at = "2026-01-01T00:05:00.000Z"): void {
    if (!this.task_) throw new Error("no task");
    this.task_ = {
      ...this.task_,
      state,
      finished_at: at,
      error:
        state === "failed"
          ? {
              error: "model error",
              exit_code: 1,
              reason_code: "internal_error",
              retryable: false,
              details: {},
            }
          : null,
    };
    this.agent = { ...this.agent, state: state === "failed" ? "error" : "idle", last_activity: at };
  }

  async diff(_opts: { stat?: boolean }): Promise<sandboxdApi.DiffResponse> {
    this.call("diff");
    const files = (this.workspace?.changed_files ?? []).map((f) => ({ ...f, insertions: 1, deletions: 0 }));
    return { files, patch: files.map((f) => `diff --git a/${f.path} b/${f.path}\n`).join("") };
  }

  async login(): Promise<sandboxdApi.LoginResponse> {
    this.call("login");
    return { code: "c", expires_at: "2026-01-01T01:00:00.000Z", path: "/auth/c" };
  }

  async shutdown(): Promise<void> {
    this.call("shutdown");
    this.phase = "failed";
  }

  async checkpoint(body: sandboxdApi.CheckpointRequest): Promise<CheckpointManifest> {
    this.call("checkpoint");
    const ws = this.workspace;
    if (!ws) throw new AlpineError("internal_error", "no workspace");
    const artifacts = new Map<string, Uint8Array>([
      ["workspace.bundle", new TextEncoder().encode(`bundle of ${ws.tree_hash} at ${body.checkpoint_id}`)],
      ["opencode-data.tar.gz", new TextEncoder().encode(`sessions at ${body.checkpoint_id}`)],
    ]);
    this.written.set(body.checkpoint_id, artifacts);
    this.checkpointRequests.push(structuredClone(body));
    const parent = body.parent;
    const bundleOf = (m: CheckpointManifest) =>
      m.artifacts.find((a) => a.name === "workspace.bundle")!.sha256;
    return {
      // A thin bundle on the parent, as sandboxd writes one when it still has the parent's commits.
      ...(parent
        ? {
            depends_on: {
              checkpoints: [
                ...(parent.depends_on?.checkpoints ?? []),
                { checkpoint_id: parent.checkpoint_id, sha256: bundleOf(parent) },
              ],
              upstream: parent.depends_on?.upstream ?? [],
              prerequisites: [parent.head_commit],
            },
          }
        : {}),
      schema_version: 1,
      checkpoint_id: body.checkpoint_id,
      sandbox_id: this.sandboxId,
      created_at: body.created_at,
      branch: ws.branch,
      base_commit: ws.base_commit,
      head_commit: ws.head ?? ws.base_commit,
      checkpoint_commit: fakeSha(`commit:${ws.tree_hash}`),
      tree_hash: ws.tree_hash ?? fakeSha("empty"),
      artifacts: await Promise.all(
        [...artifacts].map(async ([name, bytes]) => ({
          name,
          sha256: await sha256Hex(bytes),
          bytes: bytes.length,
        })),
      ),
    };
  }

  async checkpointArtifact(checkpointId: string, name: string): Promise<ReadableStream<Uint8Array>> {
    this.call("checkpointArtifact");
    const bytes = this.written.get(checkpointId)?.get(name);
    if (!bytes) throw new AlpineError("checkpoint_missing", `no artifact ${name}`);
    return streamOf(this.tamper === name ? new TextEncoder().encode("tampered") : bytes);
  }

  async deleteCheckpoint(checkpointId: string): Promise<void> {
    this.call("deleteCheckpoint");
    this.written.delete(checkpointId);
  }

  async putRestoreArtifact(name: string, body: ReadableStream<Uint8Array>): Promise<void> {
    this.call("putRestoreArtifact");
    this.staged.set(name, await readAll(body));
  }

  async restore(
    body: sandboxdApi.RestoreRequest,
    onPhase?: (phase: sandboxdApi.SandboxdPhase) => void,
  ): Promise<SandboxdStatusView> {
    this.call("restore");
    const wanted = body.manifest.depends_on?.checkpoints ?? [];
    if ((body.chain ?? []).map((m) => m.checkpoint_id).join() !== wanted.map((c) => c.checkpoint_id).join()) {
      throw new AlpineError("checkpoint_missing", "the restore did not bring the chain its manifest names");
    }
    for (const [i, link] of (body.chain ?? []).entries()) {
      const bytes = this.staged.get(sandboxdApi.chainLinkArtifactName(link.checkpoint_id));
      if (!bytes || (await sha256Hex(bytes)) !== wanted[i]!.sha256) {
        throw new AlpineError(
          "checkpoint_checksum_mismatch",
          `staged link ${link.checkpoint_id} does not match`,
          {
            artifact: "workspace.bundle",
            checkpoint_id: link.checkpoint_id,
          },
        );
      }
    }
    this.restoredChain = (body.chain ?? []).map((m) => m.checkpoint_id);
    this.restoredWithCredentials = body.credentials ?? null;
    for (const artifact of body.manifest.artifacts) {
      const bytes = this.staged.get(artifact.name);
      if (!bytes || (await sha256Hex(bytes)) !== artifact.sha256) {
        throw new AlpineError("checkpoint_checksum_mismatch", `staged ${artifact.name} does not match`, {
          artifact: artifact.name,
        });
      }
    }
    onPhase?.("starting_agent");
    this.restoredFrom = body.manifest;
    this.workspace = {
      repo: body.repo,
      branch: body.branch,
      base_commit: body.manifest.base_commit,
      head: body.manifest.head_commit,
      dirty: true,
      changed_files: [],
      ahead: 0,
      tree_hash: body.manifest.tree_hash,
    };
    this.phase = "ready";
    return this.snapshot();
  }

  async export(body: sandboxdApi.ExportRequest): Promise<WorkExport> {
    this.call("export");
    this.exports.push(structuredClone(body));
    const ws = this.workspace;
    if (!ws) throw new AlpineError("internal_error", "no workspace");
    return {
      branch: body.branch,
      commit: fakeSha(`export:${ws.tree_hash}`),
      base_commit: ws.base_commit,
      tree_hash: ws.tree_hash ?? fakeSha("empty"),
      files_changed: ws.changed_files.length,
      insertions: ws.changed_files.length,
      deletions: 0,
      pushed: body.push,
      remote: body.push ? ws.repo : null,
    };
  }
}
