import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AlpineError, type ErrorJson, toAlpineError } from "../../core/src/errors.ts";
import type {
  InitEvent,
  InitRequest,
  SandboxdConfig,
  SandboxdPhase,
  SandboxdStatus,
} from "../../core/src/sandboxd-api.ts";
import { AgentTracker } from "./agent.ts";
import { CredentialBroker, type GitCredentials } from "./credentials.ts";
import { checkRef, GitRunner, type ResolvedRepo, resolveRepo } from "./git.ts";
import type { Logger } from "./log.ts";
import { OpencodeSupervisor } from "./opencode.ts";
import { killRunning } from "./proc.ts";
import { Workspace, type WorkspaceStatus } from "./workspace.ts";

export interface InitPlan {
  repo: ResolvedRepo;
  ref: string | undefined;
  branch: string;
  credentials: GitCredentials | undefined;
}

/** Everything one sandbox is: phase, workspace, OpenCode and its agent. */
export class Sandbox {
  phase: SandboxdPhase = "booting";
  error: ErrorJson | null = null;
  readonly broker = new CredentialBroker();
  readonly git: GitRunner;
  readonly workspace: Workspace;
  readonly opencode: OpencodeSupervisor;
  readonly agent: AgentTracker;
  private readonly shadowDir: string;
  private listenPort = 0;

  constructor(
    readonly config: SandboxdConfig,
    readonly log: Logger,
    helperCommand: string,
  ) {
    this.git = new GitRunner(
      log,
      this.broker,
      helperCommand,
      () => `http://${this.loopbackHost()}:${this.listenPort}`,
    );
    // Private to sandboxd: under bubblewrap the agent's /tmp is another dir.
    this.shadowDir = mkdtempSync(join(tmpdir(), "alpine-sandboxd-"));
    this.workspace = new Workspace(config.workspace_dir, join(this.shadowDir, "shadow.git"), this.git, log);
    this.opencode = new OpencodeSupervisor({
      bin: config.opencode_bin,
      workspace: config.workspace_dir,
      home: config.home_dir,
      tmp: config.tmp_dir,
      isolation: config.isolation,
      mask: config.mask_paths,
      model: config.opencode.model,
      config: config.opencode.config,
      auth: config.opencode.auth,
      log,
    });
    this.agent = new AgentTracker(this.opencode, config.opencode.model, log);
  }

  setListenPort(port: number): void {
    this.listenPort = port;
  }

  private loopbackHost(): string {
    const h = this.config.host;
    if (h === "0.0.0.0" || h === "::" || h === "localhost" || h === "") return "127.0.0.1";
    return h.includes(":") ? `[${h}]` : h;
  }

  /** Validates an init request before anything runs; returns what to do. */
  async plan(req: InitRequest): Promise<InitPlan | "ready"> {
    const repo = resolveRepo(req.repo);
    const branch = await this.git.checkBranch(
      req.branch ?? `${this.config.branch_prefix}/${this.config.name}`,
    );
    if (req.ref !== undefined) checkRef(req.ref);
    if (req.credentials && /[\n\0]/.test(req.credentials.username + req.credentials.password)) {
      throw new AlpineError("usage_invalid", "credentials must not contain newlines or NUL characters");
    }
    if (this.phase === "cloning" || this.phase === "starting_agent" || this.phase === "restoring") {
      throw new AlpineError("operation_in_progress", `the sandbox is ${this.phase.replace("_", " ")}`, {
        phase: this.phase,
      });
    }
    const meta = this.workspace.loadMeta();
    if (meta && meta.repo !== repo.display) {
      throw new AlpineError(
        "sandbox_identity_conflict",
        `this sandbox's workspace holds ${meta.repo}, not ${repo.display}`,
        { repo: meta.repo, requested: repo.display },
      );
    }
    if (this.phase === "ready") return "ready";
    for (const c of [req.credentials?.password, repo.urlCredentials?.password]) this.log.addSecret(c);
    // Reserved now (no await between here and init): a concurrent init gets operation_in_progress.
    this.phase = "cloning";
    return { repo, ref: req.ref, branch, credentials: req.credentials };
  }

  /** Clone (or reuse the workspace), then start OpenCode. Never throws: the result says. */
  async init(plan: InitPlan, emit: (ev: InitEvent) => void): Promise<void> {
    const t0 = Date.now();
    const setPhase = (phase: SandboxdPhase) => {
      this.phase = phase;
      emit({ type: "phase", phase });
      this.log.info("phase", { phase, ms: Date.now() - t0 });
    };
    this.error = null;
    try {
      setPhase("cloning");
      this.opencode.prepare();
      // OpenCode boots (≈1-2 s) while git clones: it reads nothing from the workspace until
      // the first request for it, and none is made before the checkout exists (the event
      // subscription waits for agent.enable(), the UI proxy for phase ready).
      const started = this.opencode.start();
      started.catch(() => {});
      const reused = this.workspace.loadMeta();
      if (reused) {
        this.log.info("reusing the existing workspace", { base_commit: reused.base_commit });
      } else {
        try {
          await this.workspace.clone(plan.repo, plan.ref, plan.branch, plan.credentials);
        } catch (err) {
          await this.opencode.stop();
          await started.catch(() => {});
          throw err;
        }
      }
      setPhase("starting_agent");
      // The workspace status is computed while OpenCode finishes booting.
      const [, ws] = await Promise.all([started, this.workspaceStatus()]);
      this.agent.enable();
      await this.agent.waitConnected(5000);
      this.phase = "ready";
      this.log.info("phase", { phase: "ready", ms: Date.now() - t0 });
      emit({ type: "result", ok: true, status: await this.status(ws) });
    } catch (err) {
      const e = toAlpineError(err);
      this.phase = "failed";
      this.error = e.toJSON();
      this.log.error("init failed", { error: e.toJSON(), ms: Date.now() - t0 });
      emit({ type: "result", ok: false, error: e.toJSON() });
    }
  }

  private async workspaceStatus(): Promise<WorkspaceStatus | null> {
    try {
      return await this.workspace.status();
    } catch (err) {
      this.log.warn("workspace status failed", { error: String((err as Error).message ?? err) });
      return null;
    }
  }

  async status(ws?: WorkspaceStatus | null): Promise<SandboxdStatus> {
    const workspace = ws === undefined ? await this.workspaceStatus() : ws;
    const oc = this.opencode;
    return {
      sandbox_id: this.config.sandbox_id,
      name: this.config.name,
      phase: this.phase,
      error: this.error,
      workspace,
      agent: {
        state: this.agent.state,
        last_activity: this.agent.lastActivity?.toISOString() ?? null,
        session_id: this.agent.sessionId,
      },
      task: this.agent.taskStatus(),
      opencode: {
        version: oc.version,
        pid: oc.pid,
        restarts: oc.restarts,
        ready: oc.ready,
        started_at: oc.startedAt?.toISOString() ?? null,
      },
    };
  }

  requireReady(): void {
    if (this.phase !== "ready") {
      throw new AlpineError("sandbox_not_running", `the sandbox is not ready (phase ${this.phase})`, {
        phase: this.phase,
      });
    }
  }

  async shutdown(): Promise<void> {
    killRunning();
    this.agent.close();
    await this.opencode.stop();
    rmSync(this.shadowDir, { recursive: true, force: true });
  }
}
