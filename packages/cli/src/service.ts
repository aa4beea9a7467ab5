import type {
  CheckpointView,
  DiffView,
  ExportView,
  LaunchInput,
  LaunchView,
  ListItemView,
  LogsView,
  Progress,
  ProviderKind,
  StatusView,
  TaskView,
  TeardownView,
} from "@alpine/core";
import { PROVIDERS } from "@alpine/core/provider-kinds";

/** `alpine task`'s result (core's TaskView). */
export type TaskResult = TaskView;
/** `alpine diff`'s result (core's DiffView). */
export type DiffResult = DiffView;
/** `alpine logs`'s result (core's LogsView). */
export type LogsResult = LogsView;

/** What `alpine launch` asks for: the orchestrator's own launch input. */
export type LaunchRequest = LaunchInput;

/**
 * The seam between commands and where the orchestrator runs. Commands parse
 * flags, call one method and render what it returns; every return value is
 * the command's `--json` output (core's views.ts), so local and remote print
 * the same JSON.
 *
 * - LocalSandboxService (service-local.ts): the operations (core's
 *   operations/) on the orchestrator in this process, SQLite state, local
 *   checkpoints; providers `local` and `docker`.
 * - RemoteSandboxService (remote/): HTTP to the Cloudflare control plane,
 *   built from core's route table; its Durable Objects run the same operations.
 */
export interface SandboxService {
  readonly remote: boolean;
  launch(input: LaunchRequest, progress: Progress, opts?: { wait: boolean }): Promise<LaunchView>;
  /** `all`: every sandbox of a control plane (admins); local lists are everything anyway. */
  list(opts?: { all?: boolean }): Promise<ListItemView[]>;
  status(name: string): Promise<StatusView>;
  task(
    name: string,
    prompt: string,
    opts: { wait: boolean; newSession?: boolean; budget?: string },
    progress: Progress,
  ): Promise<TaskResult>;
  diff(name: string, opts: { stat: boolean }): Promise<DiffResult>;
  /** A one-time login link to the web UI. */
  login(name: string, opts?: { port?: number }): Promise<{ web_url: string }>;
  /** The export's JSON output; `patch` holds the patch text when input.patch was set. */
  export(
    name: string,
    input: { branch?: string; pr?: boolean; patch?: boolean; from_checkpoint?: boolean },
    progress: Progress,
  ): Promise<ExportView & { patch?: string }>;
  checkpoint(name: string, progress: Progress): Promise<CheckpointView>;
  teardown(name: string, opts: { force: boolean }, progress: Progress): Promise<TeardownView>;
  logs(name: string, opts: { tail: number; afterSeq?: number }): Promise<LogsResult>;
  gc(opts: { dryRun: boolean }): Promise<{ torn_down: string[]; kept: { name: string; reason: string }[] }>;
}

const services = new WeakMap<object, Map<string, SandboxService>>();

/**
 * The service for a command: remote when the sandbox's provider runs on the
 * control plane (sandbox.provider, or `launch --provider`; see provider-kinds.ts),
 * else the orchestrator in this process.
 */
export async function sandboxService(
  ctx: import("./context.ts").Context,
  opts: { provider?: ProviderKind; config?: import("@alpine/core").AlpineConfig } = {},
): Promise<SandboxService> {
  const kind = opts.provider ?? (opts.config ?? ctx.config).sandbox.provider;
  const key = PROVIDERS[kind].runs_in === "control_plane" ? "remote" : "local";
  let byKind = services.get(ctx);
  if (!byKind) {
    byKind = new Map();
    services.set(ctx, byKind);
  }
  const cached = byKind.get(key);
  if (cached) return cached;
  let service: SandboxService;
  if (key === "remote") {
    const [
      { ControlPlaneClient, RemoteSandboxService, controlPlaneFrom },
      credentials,
      { hostGitAuthor },
      { notifySecrets },
    ] = await Promise.all([
      import("./remote/index.ts"),
      import("./credentials.ts"),
      import("./git-host.ts"),
      import("@alpine/core/notify"),
    ]);
    const config = opts.config ?? ctx.config;
    service = new RemoteSandboxService(new ControlPlaneClient(controlPlaneFrom(config)), {
      config,
      credentialsFor: (repo) => credentials.hostCredentialsFor(repo, config),
      githubToken: () => process.env.GITHUB_TOKEN || process.env.GH_TOKEN || null,
      gitAuthor: hostGitAuthor,
      notifySecrets: () => notifySecrets(config.notify, process.env),
    });
  } else {
    const { LocalSandboxService } = await import("./service-local.ts");
    service = new LocalSandboxService(ctx);
  }
  byKind.set(key, service);
  return service;
}
