import {
  type AlpineConfig,
  AlpineError,
  type AuditEntryView,
  type CheckpointView,
  type ExportView,
  type GcView,
  type LaunchView,
  type ListItemView,
  type LoginView,
  type LogsView,
  type Progress,
  type SessionEntryView,
  type SessionsRevokeView,
  type StatusView,
  type TaskView,
  type TeardownView,
} from "@alpine/core";
import type { DiffResult, LaunchRequest, SandboxService } from "../service.ts";
import type { ControlPlaneClient } from "./client.ts";

/** What a remote call needs from the user's machine; resolved lazily (credential helpers can be slow). */
export interface RemoteLocalSide {
  config: AlpineConfig;
  credentialsFor(repo: string): Promise<{ username: string; password: string } | null>;
  githubToken(): string | null;
  gitAuthor(): Promise<{ name: string; email: string }>;
  /** The webhook secrets config `notify` names (core's notifySecrets); throws when one is unset. */
  notifySecrets(): Record<string, string>;
}

/**
 * Every command's operation against the Cloudflare control plane, whose
 * Durable Objects run the same operations (core's operations/) as
 * LocalSandboxService. This side adds only what the user's machine knows
 * (git credentials, git author, the config), sent with the request that
 * needs it; the answers are the CLI's own JSON, unchanged.
 */
export class RemoteSandboxService implements SandboxService {
  readonly remote = true;

  constructor(
    private readonly client: ControlPlaneClient,
    private readonly local: RemoteLocalSide,
  ) {}

  private config() {
    return this.local.config as unknown as Record<string, unknown>;
  }

  async launch(
    input: LaunchRequest,
    progress: Progress,
    opts: { wait: boolean } = { wait: true },
  ): Promise<LaunchView> {
    const repo = input.repo ?? (await this.existingRepo(input.name));
    const request = {
      repo: input.repo,
      ref: input.ref,
      image_profile: input.image_profile,
      task: input.task,
      force_recreate: input.force_recreate,
      ...(input.skip_setup ? { skip_setup: true } : {}),
      config: this.config(),
      credentials: repo ? await this.local.credentialsFor(repo) : null,
      notify_secrets: this.local.notifySecrets(),
    };
    if (opts.wait) return this.client.call("launch", request, { sandbox: input.name, progress });
    await this.client.start("launch", request, { sandbox: input.name });
    const s = await this.status(input.name);
    return {
      name: s.name,
      id: s.id,
      state: s.state,
      provider: s.provider,
      repo: s.identity.repo,
      ref: s.identity.ref,
      branch: `${this.local.config.github.branch_prefix}/${s.name}`,
      image_profile: s.identity.image_profile,
      web_url: null,
      reused: false,
      resumed: false,
      task_accepted: false,
      session_id: null,
      operation_id: s.operation?.id ?? "",
    };
  }

  /** The repo of an existing sandbox (for its clone credentials on resume); null when it does not exist. */
  private async existingRepo(name: string): Promise<string | null> {
    try {
      return (await this.status(name)).identity.repo;
    } catch (err) {
      if (err instanceof AlpineError && err.reason === "sandbox_not_found") return null;
      throw err;
    }
  }

  list(opts: { all?: boolean } = {}): Promise<ListItemView[]> {
    return this.client.call("list", opts.all ? { all: "1" } : {});
  }

  /** The control plane's audit log (`alpine logs --audit`). */
  audit(tail: number): Promise<AuditEntryView[]> {
    return this.client.call("audit", { tail });
  }

  /** identity: the control plane's sign-in sessions (`alpine sessions ls`; admins). */
  sessions(user?: string): Promise<SessionEntryView[]> {
    return this.client.call("sessions", user ? { user } : {});
  }

  /** identity: revokes one session or all of a user's (`alpine sessions revoke`; admins). */
  revokeSessions(by: { id: string } | { user: string }): Promise<SessionsRevokeView> {
    return this.client.call("revoke_sessions", by);
  }

  status(name: string): Promise<StatusView> {
    return this.client.call("status", {}, { sandbox: name });
  }

  task(
    name: string,
    prompt: string,
    opts: { wait: boolean; newSession?: boolean; budget?: string },
    progress: Progress,
  ): Promise<TaskView> {
    return this.client.call(
      "task",
      {
        prompt,
        wait: opts.wait,
        ...(opts.newSession ? { new_session: true } : {}),
        budget: opts.budget,
        config: this.config(),
        notify_secrets: this.local.notifySecrets(),
      },
      { sandbox: name, progress },
    );
  }

  diff(name: string, opts: { stat: boolean }): Promise<DiffResult> {
    return this.client.call("diff", { stat: opts.stat ? "1" : undefined }, { sandbox: name });
  }

  login(name: string, opts: { port?: number } = {}): Promise<LoginView> {
    return this.client.call("login", opts.port !== undefined ? { port: opts.port } : {}, { sandbox: name });
  }

  async export(
    name: string,
    input: { branch?: string; pr?: boolean; patch?: boolean; from_checkpoint?: boolean },
    progress: Progress,
  ): Promise<ExportView & { patch?: string }> {
    const status = await this.status(name);
    const push = !input.patch;
    return this.client.call(
      "export",
      {
        ...input,
        credentials: push ? await this.local.credentialsFor(status.identity.repo) : null,
        github_token: input.pr ? this.local.githubToken() : null,
        author: await this.local.gitAuthor(),
        config: this.config(),
      },
      { sandbox: name, progress },
    );
  }

  checkpoint(name: string, progress: Progress): Promise<CheckpointView> {
    return this.client.call("checkpoint", { config: this.config() }, { sandbox: name, progress });
  }

  teardown(name: string, opts: { force: boolean }, progress: Progress): Promise<TeardownView> {
    return this.client.call(
      "teardown",
      { force: opts.force, config: this.config() },
      { sandbox: name, progress },
    );
  }

  logs(name: string, opts: { tail: number; afterSeq?: number }): Promise<LogsView> {
    return this.client.call(
      "logs",
      { tail: String(opts.tail), after_seq: opts.afterSeq ? String(opts.afterSeq) : undefined },
      { sandbox: name },
    );
  }

  gc(opts: { dryRun: boolean }): Promise<GcView> {
    return this.client.call("gc", { dry_run: opts.dryRun, config: this.config() });
  }

  /** `alpine auth sync` against the control plane: the entries are stored sealed there. */
  syncAuth(entries: Record<string, unknown>): Promise<{ providers: string[]; held: string[] }> {
    return this.client.call("auth", { entries });
  }
}
