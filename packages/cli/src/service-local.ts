import {
  type CheckpointView,
  checkpointOperation,
  diffOperation,
  type ExportView,
  exportOperation,
  type GcView,
  gcOperation,
  type LaunchView,
  type ListItemView,
  type LoginView,
  type LogsView,
  launchOperation,
  listOperation,
  loginOperation,
  logsOperation,
  type OperationContext,
  type Progress,
  type SandboxRecord,
  type StatusView,
  silentProgress,
  statusOperation,
  type TaskView,
  type TeardownView,
  taskOperation,
  teardownOperation,
} from "@alpine/core";
import type { Context } from "./context.ts";
import type { DiffResult, LaunchRequest, SandboxService } from "./service.ts";

/** How long `status` waits for a sandboxd's answer (its workspace status included). */
const STATUS_PROBE_TIMEOUT_MS = 5000;

/**
 * The operations (core's operations/) on the orchestrator in this process:
 * SQLite state, local checkpoints, the local and docker providers. The
 * runtime's web UI is reached at its own address.
 */
export class LocalSandboxService implements SandboxService {
  readonly remote = false;

  constructor(private readonly ctx: Context) {}

  private async operations(progress: Progress = silentProgress): Promise<OperationContext> {
    const ctx = this.ctx;
    return {
      orchestrator: await ctx.orchestrator(),
      config: ctx.config,
      progress,
      runtimeLogs: async (record: SandboxRecord, tail: number) =>
        record.runtime ? (await ctx.provider(record.provider)).logs(record.runtime.handle, { tail }) : [],
      loginUrl: (record: SandboxRecord, code: string) =>
        `${record.runtime?.web_url?.replace(/\/$/, "") ?? ""}/auth/${code}`,
      // Each port its own origin on sandboxd's listener: `<port>-<name>.localhost:<sandboxd port>`.
      previewUrl: (record: SandboxRecord, path: string, port: number) => {
        const base = new URL(record.runtime?.web_url ?? "http://127.0.0.1");
        return `${base.protocol}//${port}-${record.name}.localhost${base.port ? `:${base.port}` : ""}${path}`;
      },
    };
  }

  async launch(input: LaunchRequest, progress: Progress): Promise<LaunchView> {
    return launchOperation(await this.operations(progress), input);
  }

  async list(): Promise<ListItemView[]> {
    return listOperation(await this.operations());
  }

  async status(name: string): Promise<StatusView> {
    return statusOperation(await this.operations(), name, { probeTimeoutMs: STATUS_PROBE_TIMEOUT_MS });
  }

  async task(
    name: string,
    prompt: string,
    opts: { wait: boolean; newSession?: boolean; budget?: string },
    progress: Progress,
  ): Promise<TaskView> {
    return taskOperation(await this.operations(progress), name, prompt, opts);
  }

  async diff(name: string, opts: { stat: boolean }): Promise<DiffResult> {
    return diffOperation(await this.operations(), name, opts);
  }

  async login(name: string, opts: { port?: number } = {}): Promise<LoginView> {
    return loginOperation(await this.operations(), name, opts);
  }

  async export(
    name: string,
    input: { branch?: string; pr?: boolean; patch?: boolean; from_checkpoint?: boolean },
    progress: Progress,
  ): Promise<ExportView & { patch?: string }> {
    return exportOperation(await this.operations(progress), name, input);
  }

  async checkpoint(name: string, progress: Progress): Promise<CheckpointView> {
    return checkpointOperation(await this.operations(progress), name);
  }

  async teardown(name: string, opts: { force: boolean }, progress: Progress): Promise<TeardownView> {
    return teardownOperation(await this.operations(progress), name, opts);
  }

  async logs(name: string, opts: { tail: number; afterSeq?: number }): Promise<LogsView> {
    return logsOperation(await this.operations(), name, opts);
  }

  async gc(opts: { dryRun: boolean }): Promise<GcView> {
    return gcOperation(await this.operations(), opts);
  }
}
