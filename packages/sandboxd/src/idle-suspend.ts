import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { IDLE_SUSPEND_LOG_MESSAGE, idleVerdict } from "@alpine/core/suspension";
import type { Logger } from "./log.ts";
import type { Sandbox } from "./sandbox.ts";

/**
 * Scale-to-zero on a provider whose disk outlives the runtime (local, docker; config
 * `idle_suspend`): nothing else runs while no alpine command does, so sandboxd itself watches for
 * idleness. Once the agent has been idle (core's idleVerdict: never busy, retry, needs_input or a
 * running task) and no API or web UI request was open or made (status reads aside) for `after_ms`,
 * it logs IDLE_SUSPEND_LOG_MESSAGE with the workspace's state and the disk it holds, and stops
 * (OpenCode with it). Its workspace stays on the provider's disk; the next alpine command records
 * the sandbox `suspended` from that line, and any command that needs it starts it again.
 */
export class IdleSuspend {
  private inFlight = 0;
  private lastRequestAt = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private afterMs: number | null = null;
  private checking = false;

  constructor(
    private readonly sandbox: Sandbox,
    private readonly log: Logger,
    private readonly stop: () => void,
  ) {}

  /** Starts (or re-arms with a new period) the watch; null turns it off. */
  configure(afterMs: number | null): void {
    this.afterMs = afterMs;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (afterMs === null) return;
    this.lastRequestAt = Date.now();
    // Checked a few times per period, so it is suspended at most a quarter period late.
    const every = Math.max(250, Math.min(15_000, Math.floor(afterMs / 4)));
    this.timer = setInterval(() => void this.check(), every);
    this.timer.unref();
  }

  /** A request that is use of the sandbox began; the returned function ends it. */
  begin(): () => void {
    this.inFlight++;
    this.lastRequestAt = Date.now();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.inFlight--;
      this.lastRequestAt = Date.now();
    };
  }

  private async check(): Promise<void> {
    if (this.checking || this.afterMs === null || this.sandbox.phase !== "ready") return;
    this.checking = true;
    try {
      const agent = this.sandbox.agent;
      const facts = () => ({
        agent: agent.state,
        taskRunning: agent.taskStatus()?.state === "running",
        requestsInFlight: this.inFlight,
        lastActivityMs: Math.max(this.lastRequestAt, agent.lastActivity?.getTime() ?? 0),
        nowMs: Date.now(),
        afterMs: this.afterMs,
      });
      if (!idleVerdict(facts()).suspend) return;
      const workspace = await this.sandbox.workspaceStatus();
      const diskBytes = await diskUsage([
        this.sandbox.config.workspace_dir,
        this.sandbox.config.home_dir,
      ]).catch(() => null);
      // Asked again after the slow reads: a request or task that arrived meanwhile keeps it.
      const verdict = idleVerdict(facts());
      if (!verdict.suspend || this.sandbox.phase !== "ready") return;
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      this.log.info(IDLE_SUSPEND_LOG_MESSAGE, {
        idle_ms: verdict.idleForMs,
        disk_bytes: diskBytes,
        workspace: workspace
          ? { dirty: workspace.dirty, ahead: workspace.ahead, tree_hash: workspace.tree_hash }
          : null,
      });
      this.stop();
    } catch (err) {
      this.log.warn("idle check failed", { error: String((err as Error)?.message ?? err) });
    } finally {
      this.checking = false;
    }
  }
}

/** Bytes on disk under the given directories (allocated blocks; links not followed). */
export async function diskUsage(dirs: readonly string[]): Promise<number> {
  let total = 0;
  const stack = [...dirs];
  while (stack.length > 0) {
    const path = stack.pop() as string;
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(path);
    } catch {
      // Removed while counting (OpenCode's temp files): it holds nothing any more.
      continue;
    }
    total += st.blocks * 512;
    if (st.isDirectory()) {
      const names = await readdir(path).catch(() => [] as string[]);
      for (const name of names) stack.push(join(path, name));
    }
  }
  return total;
}
