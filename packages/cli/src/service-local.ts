import {
  type CheckpointView,
  checkpointView,
  type ExportView,
  exportView,
  type LaunchView,
  type ListItemView,
  launchView,
  listItemView,
  type Progress,
  type StatusView,
  statusView,
  type TeardownView,
  teardownView,
} from "@alpine/core";
import type { Context } from "./context.ts";
import type { DiffResult, LaunchRequest, LogsResult, SandboxService, TaskResult } from "./service.ts";

/** How long `status` waits for a sandboxd's answer (its workspace status included). */
const STATUS_PROBE_TIMEOUT_MS = 5000;

/** The orchestrator in this process: SQLite state, local checkpoints, the local and docker providers. */
export class LocalSandboxService implements SandboxService {
  readonly remote = false;

  constructor(private readonly ctx: Context) {}

  private orchestrator() {
    return this.ctx.orchestrator();
  }

  async launch(input: LaunchRequest, progress: Progress): Promise<LaunchView> {
    return launchView(await (await this.orchestrator()).launch(input, progress));
  }

  async list(): Promise<ListItemView[]> {
    return (await (await this.ctx.store()).list()).map(listItemView);
  }

  async status(name: string): Promise<StatusView> {
    const orchestrator = await this.orchestrator();
    // A command that died mid-way left a state that is no longer true: settle it before reporting.
    let record = await orchestrator.settle(await orchestrator.get(name));
    // The probe and the lease are independent reads; a sandboxd that hangs is reported
    // unavailable after a short wait instead of holding the command for the client's default.
    const [probe, lease] = await Promise.all([
      orchestrator.probe(record, { timeoutMs: STATUS_PROBE_TIMEOUT_MS }),
      orchestrator.activeLease(name),
    ]);
    record = await orchestrator.reconcile(record, probe);
    return statusView(orchestrator, record, probe, lease, this.ctx.config);
  }

  async task(name: string, prompt: string, opts: { wait: boolean }, progress: Progress): Promise<TaskResult> {
    const orchestrator = await this.orchestrator();
    const { record: sent, session_id } = await orchestrator.task(name, prompt);
    let record = sent;
    if (opts.wait) {
      progress.step("waiting for the agent to finish");
      record = await orchestrator.waitForTask(name);
    }
    return { name, session_id, state: record.state };
  }

  async diff(name: string, opts: { stat: boolean }): Promise<DiffResult> {
    const orchestrator = await this.orchestrator();
    const client = await orchestrator.connect(await orchestrator.get(name));
    const diff = await client.diff({ stat: opts.stat });
    return { name, files: diff.files, patch: opts.stat ? "" : (diff.patch ?? "") };
  }

  async login(name: string): Promise<{ web_url: string }> {
    const orchestrator = await this.orchestrator();
    const record = await orchestrator.get(name);
    const { code } = await (await orchestrator.connect(record)).login();
    const base = record.runtime?.web_url?.replace(/\/$/, "") ?? "";
    return { web_url: `${base}/auth/${code}` };
  }

  async export(
    name: string,
    input: { branch?: string; pr?: boolean; patch?: boolean; from_checkpoint?: boolean },
    progress: Progress,
  ): Promise<ExportView & { patch?: string }> {
    const result = await (await this.orchestrator()).export(name, input, progress);
    return { ...exportView(name, result), ...(input.patch ? { patch: result.work.patch ?? "" } : {}) };
  }

  async checkpoint(name: string, progress: Progress): Promise<CheckpointView> {
    return checkpointView(name, await (await this.orchestrator()).checkpoint(name, progress));
  }

  async teardown(name: string, opts: { force: boolean }, progress: Progress): Promise<TeardownView> {
    return teardownView(name, await (await this.orchestrator()).teardown(name, opts, progress), opts.force);
  }

  async logs(name: string, opts: { tail: number; afterSeq?: number }): Promise<LogsResult> {
    const orchestrator = await this.orchestrator();
    const record = await orchestrator.get(name);
    const events = await orchestrator.events(name, { afterSeq: opts.afterSeq });
    const lines = record.runtime
      ? await (await this.ctx.provider(record.provider))
          .logs(record.runtime.handle, { tail: opts.tail })
          .catch(() => [])
      : [];
    return { name, events, lines };
  }

  async gc(opts: { dryRun: boolean }) {
    return (await this.orchestrator()).gc(opts);
  }
}
