import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { AlpineError, type ErrorJson, toAlpineError } from "@alpine/core/errors";
import { validateName } from "@alpine/core/names";
import type {
  AdoptRequest,
  InitEvent,
  InitRequest,
  SandboxdConfig,
  SandboxdPhase,
  SandboxdStatus,
  WorkspaceStatus,
} from "@alpine/core/sandboxd-api";
import { agentSecretEnv } from "@alpine/core/secrets";
import { AgentTracker } from "./agent.ts";
import { CheckpointDir, checkpointDirOf } from "./checkpoint.ts";
import type { GitCredentials } from "./credentials.ts";
import { EgressProxy } from "./egress-proxy.ts";
import { SandboxEnvironment } from "./environment.ts";
import { checkRef, GitRunner, type ResolvedRepo, resolveRepo } from "./git.ts";
import type { Logger } from "./log.ts";
import { ModelBroker } from "./model-broker.ts";
import { Notifier } from "./notify.ts";
import { OpencodeSupervisor } from "./opencode.ts";
import { type AgentNet, INNER_OPENCODE_PORT, INNER_PROXY_PORT } from "./opencode-env.ts";
import { agentListeningPorts, previewPorts } from "./preview.ts";
import { killRunning } from "./proc.ts";
import { type CacheUse, RepoCache } from "./repo-cache.ts";
import type { RestorePrestart } from "./sandbox-restore.ts";
import { indexEntries, SpareCheckouts } from "./spare-checkout.ts";
import { Workspace } from "./workspace.ts";
import { cloneWorkspace } from "./workspace-clone.ts";
import { WorkspaceViews } from "./workspace-views.ts";

/** What may hold the sandbox exclusively (sandbox-checkpoint.ts, sandbox-export.ts, sandbox-restore.ts). */
export type Operation = "checkpoint" | "export" | "restore" | "upload";

export interface InitPlan {
  repo: ResolvedRepo;
  ref: string | undefined;
  branch: string;
  credentials: GitCredentials | undefined;
  /** `launch --skip-setup`: the environment's setup is not run (start commands are). */
  skipSetup: boolean;
}

/**
 * Everything one sandbox is: identity, phase, workspace, OpenCode and its
 * agent; and how it comes up (warm start, prestart, adopt, init). Checkpoint,
 * export and restore run on it from their own modules, one at a time
 * (`reserve`).
 */
export class Sandbox {
  phase: SandboxdPhase = "booting";
  error: ErrorJson | null = null;
  readonly git: GitRunner;
  readonly workspace: Workspace;
  /** Status and diff of the workspace. */
  readonly views: WorkspaceViews;
  readonly opencode: OpencodeSupervisor;
  readonly agent: AgentTracker;
  /** Stands in for the model credentials: the agent gets a per-sandbox token, never a key. */
  readonly broker: ModelBroker;
  /** The agent's way out (and to the broker); listening once `netReady` resolves. */
  readonly egress: EgressProxy;
  private readonly netReady: Promise<void>;
  readonly checkpoints: CheckpointDir;
  /** Sends config `notify`'s notifications (notify.ts); null without one. */
  private notifier: Notifier | null = null;
  /** The repo's environment: setup, prepared-environment cache, start services (environment.ts). */
  readonly environment: SandboxEnvironment;
  /** The host's shared per-repo object caches, when the provider offers them. */
  readonly repoCache: RepoCache | null;
  private readonly spares: SpareCheckouts | null;
  /** Who this sandbox is: from the config, or from the launch that adopted a warm sandboxd. */
  sandboxId: string;
  name: string;
  /** A warm sandboxd was taken by a launch (POST /v1/adopt). */
  adopted = false;
  /** A warm sandboxd's OpenCode opened its instance on the empty workspace (to be disposed at init). */
  private instanceWarmed: Promise<boolean> = Promise.resolve(false);
  /** OpenCode started at boot on a checkpoint's data, for the restore to come (sandbox-restore.ts). */
  restorePrestart: RestorePrestart | null = null;
  /** Repo caches mounted read-only for the agent (see mountRepoObjects). */
  private readonly visibleCaches = new Set<string>();
  /** OpenCode's data dir held something when sandboxd started (sessions may exist). */
  private readonly agentDataAtBoot: boolean;
  private readonly shadowDir: string;
  /** The one checkpoint/export/restore (or restore upload) running now. */
  private operation: Operation | null = null;

  constructor(
    readonly config: SandboxdConfig,
    readonly log: Logger,
  ) {
    this.git = new GitRunner(log);
    // Private to sandboxd: under bubblewrap the agent's /tmp is another dir.
    this.shadowDir = mkdtempSync(join(tmpdir(), "alpine-sandboxd-"));
    this.workspace = new Workspace(config.workspace_dir, join(this.shadowDir, "shadow.git"), this.git, log);
    this.views = new WorkspaceViews(this.workspace);
    this.broker = new ModelBroker(log, config.opencode.providers, config.opencode.config);
    const closed = config.egress !== "open";
    // A closed policy under bubblewrap closes the agent's namespace; its sockets live in sandboxd's private dir.
    const namespaceDir =
      closed && config.isolation === "bubblewrap" ? join(this.shadowDir, "net") : undefined;
    this.egress = new EgressProxy({
      allow: config.egress === "open" ? null : config.egress.allow,
      pin: config.egress === "open" ? undefined : config.egress.pin,
      enforced: namespaceDir !== undefined,
      broker: this.broker,
      log,
    });
    if (namespaceDir) mkdirSync(namespaceDir, { mode: 0o700 });
    this.netReady = this.egress.listen(
      namespaceDir ? { path: join(namespaceDir, "egress.sock") } : { port: 0 },
    );
    // Failing to listen fails OpenCode's start (which awaits it), not sandboxd.
    this.netReady.catch((err: unknown) =>
      log.error("the egress proxy cannot listen", { error: String(err) }),
    );
    if (closed && !namespaceDir) {
      log.warn("egress policy not enforced: without bubblewrap the agent can go around the proxy", {
        isolation: config.isolation,
      });
    }
    const broker = this.broker;
    const egress = this.egress;
    const net: AgentNet = {
      rewrite: (c, base) => broker.opencodeConfig(c, base),
      token: broker.token,
      closed,
      get hostPort() {
        return egress.port;
      },
      namespaceDir,
    };
    this.opencode = new OpencodeSupervisor({
      bin: config.opencode_bin,
      workspace: config.workspace_dir,
      home: config.home_dir,
      tmp: config.tmp_dir,
      isolation: config.isolation,
      mask: config.mask_paths,
      readOnlyPaths: config.read_only_paths,
      model: config.opencode.model,
      config: config.opencode.config,
      // The real keys stay with the broker; OpenCode's auth.json holds the token.
      auth: this.broker.setAuth(config.opencode.auth ?? {}),
      // Only the secrets marked for the agent; setup-only ones never reach OpenCode's process.
      secretEnv: agentSecretEnv(config.secrets),
      log,
      net,
      netReady: this.netReady,
    });
    this.agent = new AgentTracker(this.opencode, config.opencode.model, log);
    const opencode = this.opencode;
    this.environment = new SandboxEnvironment(config, log, (shell, network, env) =>
      opencode.confined(shell, network, env),
    );
    // Before any OpenCode of this sandboxd ran: was there ever a session?
    this.agentDataAtBoot = this.opencode.hasStoredData();
    this.checkpoints = new CheckpointDir(checkpointDirOf(config));
    this.repoCache = config.repo_cache_dir ? new RepoCache(config.repo_cache_dir, this.git, log) : null;
    this.spares = this.repoCache ? new SpareCheckouts(this.git, log, config.spare_min_files ?? 1000) : null;
    this.sandboxId = config.sandbox_id;
    this.name = config.name;
    // A warm sandboxd is nobody's yet: the launch that adopts it brings its `notify`.
    if (config.notify && !config.warm) this.startNotifier(config.notify);
  }

  /** Starts sending config `notify`'s notifications for the sandbox this sandboxd is (notify.ts). */
  private startNotifier(notify: NonNullable<SandboxdConfig["notify"]>): void {
    this.notifier?.close();
    const ledger = notify.ledger_file ?? join(dirname(checkpointDirOf(this.config)), "notify-ledger.json");
    this.notifier = new Notifier(
      notify,
      { id: this.sandboxId, name: this.name },
      this.agent,
      this.log,
      ledger,
    );
    this.notifier.start();
  }

  /**
   * Warm pool: OpenCode starts now, on the still empty workspace. Nothing asks
   * it about the workspace until init has checked it out (health probes are
   * global; the event stream waits for agent.enable()), so it then opens the
   * cloned repo as if it had started there (checked in docs/opencode.md).
   */
  warmStart(): void {
    this.opencode.prepare();
    this.instanceWarmed = this.opencode.start().then(
      () => this.opencode.warmInstance(),
      (err: unknown) => {
        this.log.warn("warm opencode did not start; init will try again", {
          error: String((err as Error).message ?? err),
        });
        return false;
      },
    );
  }

  /**
   * The launch that started this sandboxd will init `repo` (config.prestart):
   * OpenCode starts now, at boot, with the same mounts init would give it,
   * instead of when the init request arrives. Like a warm start it reads
   * nothing from the workspace until init has checked it out. A bad repo is
   * left for init to report.
   */
  prestart(repoInput: string): void {
    try {
      const repo = resolveRepo(repoInput);
      this.allowGitHost(repo);
      this.mountRepoObjects(this.workspace.loadMeta() ? null : repo);
    } catch (err) {
      this.log.info("not prestarting opencode", { error: String((err as Error).message ?? err) });
      return;
    }
    this.opencode.prepare();
    this.opencode.start().catch(() => {
      // init starts it again and reports what fails
    });
  }

  /** The agent may fetch from its repo's host (pushes stay with sandboxd). */
  private allowGitHost(repo: ResolvedRepo): void {
    if (repo.local) return;
    try {
      const url = new URL(repo.url);
      if (url.protocol === "https:" || url.protocol === "http:") this.egress.addHost(url.hostname);
    } catch {
      // An scp-like ssh address: the agent's ssh does not go through the HTTP proxy anyway.
    }
  }

  /**
   * Under bubblewrap the agent's git must read the objects its workspace
   * borrows from the host's repo cache (which is otherwise hidden with the
   * rest of $ALPINE_HOME): the cache a new clone will borrow from (`repo`),
   * or the one a kept workspace already borrows from (its alternates). Only
   * possible before OpenCode starts; visibleCaches records what is mounted.
   */
  private mountRepoObjects(repo: ResolvedRepo | null): void {
    if (!this.repoCache || this.config.isolation !== "bubblewrap") return;
    const dirs = repo ? [this.repoCache.reserve(repo)] : this.repoCache.borrowedBy(this.workspace.gitDir);
    for (const dir of dirs) {
      if (this.visibleCaches.has(dir)) continue;
      if (this.opencode.keepReadOnly(dir)) this.visibleCaches.add(dir);
    }
  }

  /** POST /v1/adopt: a warm sandboxd becomes the launching sandbox (once). */
  async adopt(req: AdoptRequest): Promise<SandboxdStatus> {
    if (!this.config.warm) {
      throw new AlpineError("usage_invalid", "this sandboxd was not started warm; there is nothing to adopt");
    }
    if (this.adopted) {
      throw new AlpineError("sandbox_identity_conflict", "this warm sandboxd was already adopted", {
        sandbox_id: this.sandboxId,
      });
    }
    validateName(req.name);
    for (const secret of allStrings(req.auth)) this.log.addSecret(secret);
    this.opencode.writeAuth(this.broker.setAuth(req.auth ?? {}));
    this.sandboxId = req.sandbox_id;
    this.name = req.name;
    this.adopted = true;
    this.log.info("adopted", { sandbox_id: req.sandbox_id, name: req.name });
    if (req.notify) this.startNotifier(req.notify);
    return this.status();
  }

  /** Validates an init request before anything runs; returns what to do. */
  async plan(req: InitRequest): Promise<InitPlan | "ready"> {
    const repo = resolveRepo(req.repo);
    const branch = await this.git.checkBranch(req.branch ?? `${this.config.branch_prefix}/${this.name}`);
    if (req.ref !== undefined) checkRef(req.ref);
    if (req.credentials && /[\n\0]/.test(req.credentials.username + req.credentials.password)) {
      throw new AlpineError("usage_invalid", "credentials must not contain newlines or NUL characters");
    }
    if (this.phase === "cloning" || this.phase === "starting_agent" || this.phase === "restoring") {
      throw new AlpineError("operation_in_progress", `the sandbox is ${this.phase.replace("_", " ")}`, {
        phase: this.phase,
      });
    }
    if (this.config.warm && !this.adopted) {
      throw new AlpineError("usage_invalid", "a warm sandboxd must be adopted (POST /v1/adopt) before init");
    }
    if (this.operation === "upload" || this.operation === "restore") {
      throw new AlpineError("operation_in_progress", "a restore is being prepared", {
        operation: this.operation,
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
    this.allowGitHost(repo);
    // Reserved now (no await between here and init): a concurrent init gets operation_in_progress.
    this.phase = "cloning";
    return { repo, ref: req.ref, branch, credentials: req.credentials, skipSetup: req.skip_setup ?? false };
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
      const reused = this.workspace.loadMeta();
      if (reused) this.mountRepoObjects(null);
      const cache = reused ? null : this.useRepoCache(plan);
      this.opencode.prepare();
      // OpenCode boots (≈1-2 s) while git clones: it reads nothing from the workspace until
      // the first request for it, and none is made before the checkout exists (the event
      // subscription waits for agent.enable(), the UI proxy for phase ready). A warm
      // sandboxd started it already; this joins that start.
      const started = this.opencode.start();
      // Both are awaited below (their failure fails the init); meanwhile not unhandled rejections.
      started.catch(() => {});
      // Before the checkout: the warm instance would watch every file it writes.
      const warmDropped = this.dropWarmInstance();
      warmDropped.catch(() => {});
      // After ready: the next launch of this repo gets a spare checkout (large work trees only).
      let prepareSpare = () => {};
      if (reused) {
        this.log.info("reusing the existing workspace", { base_commit: reused.base_commit });
      } else {
        try {
          const use = cache ? await cache.ready : null;
          const spares = this.spares ?? undefined;
          const meta = await cloneWorkspace(
            this.workspace,
            plan.repo,
            plan.ref,
            plan.branch,
            plan.credentials,
            use && cache ? { dir: use.dir, dissociate: cache.dissociate, spares } : undefined,
          );
          if (use && spares) {
            const files = indexEntries(this.workspace.gitDir);
            // In the background (it never throws); a teardown meanwhile stops its git.
            prepareSpare = () => void spares.prepare(use.dir, meta.base_commit, files);
          }
        } catch (err) {
          await this.opencode.stop();
          // The clone's error is the one to report; OpenCode was stopped on purpose.
          await started.catch(() => {});
          throw err;
        }
      }
      await this.prepareEnvironment(plan.repo, plan.skipSetup, setPhase, emit);
      setPhase("starting_agent");
      // The workspace status is computed while OpenCode finishes booting and opens the
      // workspace. A fresh checkout needs no scan of its work tree (seconds on a large repo).
      const wsReady = reused
        ? this.workspaceStatus()
        : this.views.checkoutStatus().catch((err: unknown) => {
            this.log.debug("checkout status failed; scanning the workspace", { error: String(err) });
            return this.workspaceStatus();
          });
      await started;
      await warmDropped;
      // A new workspace with an OpenCode that never stored anything has no session, so its
      // agent is idle by construction: ready waits for OpenCode to answer its health check,
      // not for the event stream (OpenCode's instance bootstrap, 100-300 ms), which opens in
      // the background. Otherwise (a reused workspace, sessions on disk) the agent's state
      // must come from OpenCode itself.
      const fresh = !reused && !this.agentDataAtBoot;
      if (fresh) this.agent.assumeIdleUntilConnected();
      this.agent.enable();
      if (fresh) await this.opencode.waitAnswered(5000);
      else await this.agent.waitConnected(5000);
      const ws = await wsReady;
      this.phase = "ready";
      this.log.info("phase", { phase: "ready", ms: Date.now() - t0 });
      emit({ type: "result", ok: true, status: await this.status(ws) });
      prepareSpare();
    } catch (err) {
      const e = toAlpineError(err);
      this.phase = "failed";
      this.error = e.toJSON();
      // Kept for inspection (the checkout exists, OpenCode runs for the UI): what a person makes
      // the agent do there is followed, so a teardown sees a busy agent and unsaved work.
      if (this.keptForInspection) this.agent.enable();
      this.log.error("init failed", { error: e.toJSON(), ms: Date.now() - t0 });
      emit({ type: "result", ok: false, error: e.toJSON() });
    }
  }

  /**
   * After the checkout (init or restore), before the agent's first task: the
   * environment's setup, or its prepared environment, then its start
   * commands (docs/environments.md). Setup's output goes to the log and, as
   * `output` lines, to the launch. Throws setup_failed; the caller reports it.
   */
  async prepareEnvironment(
    repo: ResolvedRepo,
    skip: boolean,
    setPhase: (phase: SandboxdPhase) => void,
    emit: (ev: InitEvent) => void,
  ): Promise<void> {
    const env = this.environment.load();
    if (env.setup.length > 0 && !skip) setPhase("setting_up");
    await this.environment.prepare(repo.display, skip, (line) => emit({ type: "output", line }));
    this.environment.startServices();
  }

  /**
   * The instance a warm OpenCode opened on the empty workspace is not a git
   * project (and its file watcher would see every file the checkout writes):
   * drop it. The event stream later opens the cloned repo, fast, because the
   * process is warmed up. If the dispose fails, OpenCode is restarted: the
   * agent must never work in a non-git instance.
   */
  private async dropWarmInstance(): Promise<void> {
    if (!(await this.instanceWarmed)) return;
    this.instanceWarmed = Promise.resolve(false);
    try {
      await this.opencode.disposeInstance();
    } catch (err) {
      this.log.warn("could not dispose the warm instance; restarting opencode", { error: String(err) });
      await this.opencode.stop();
      await this.opencode.start();
    }
  }

  /**
   * Starts refreshing the repo's object cache (concurrently with OpenCode's
   * start); the workspace is then cloned from it. Under bubblewrap the agent's
   * git must read the borrowed objects, so the cache is mounted read-only for
   * OpenCode, which is only possible before OpenCode starts; a warm sandboxd
   * (already started) copies the objects in instead. Never fails the launch.
   */
  private useRepoCache(plan: InitPlan): { ready: Promise<CacheUse | null>; dissociate: boolean } | null {
    const cache = this.repoCache;
    if (!cache) return null;
    try {
      const dir = cache.reserve(plan.repo);
      this.mountRepoObjects(plan.repo);
      const visible = this.config.isolation !== "bubblewrap" || this.visibleCaches.has(dir);
      const ready = cache.refresh(plan.repo, plan.credentials, Date.now()).catch((err: unknown) => {
        this.log.warn("repo cache unavailable", { error: String((err as Error).message ?? err) });
        return null;
      });
      return { ready, dissociate: !visible };
    } catch (err) {
      this.log.warn("repo cache unavailable", { error: String((err as Error).message ?? err) });
      return null;
    }
  }

  /** The workspace's status, or null (logged) when it cannot be read. */
  async workspaceStatus(): Promise<WorkspaceStatus | null> {
    try {
      return await this.views.status();
    } catch (err) {
      this.log.warn("workspace status failed", { error: String((err as Error).message ?? err) });
      return null;
    }
  }

  async status(ws?: WorkspaceStatus | null): Promise<SandboxdStatus> {
    const workspace = ws === undefined ? await this.workspaceStatus() : ws;
    const oc = this.opencode;
    return {
      sandbox_id: this.sandboxId,
      name: this.name,
      phase: this.phase,
      error: this.error,
      workspace,
      agent: {
        state: this.agent.state,
        last_activity: this.agent.lastActivity?.toISOString() ?? null,
        session_id: this.agent.sessionId,
        reason: this.agent.reason,
        usage: this.agent.usage,
      },
      task: this.agent.taskStatus(),
      opencode: {
        version: oc.version,
        pid: oc.pid,
        restarts: oc.restarts,
        ready: oc.ready,
        started_at: oc.startedAt?.toISOString() ?? null,
      },
      confinement: oc.confinement(),
      egress: this.egress.status(),
      environment: this.environment.status(),
      ports: previewPorts(this.declaredPorts(), [...new Set([...this.agentPorts(), ...this.servicePorts()])]),
    };
  }

  /** The ports the environment declares (`environment.ports`, devcontainer `forwardPorts`). */
  declaredPorts(): number[] {
    // The effective environment (devcontainer + config) once the checkout was read; before it, the config's.
    return this.environment.effective?.ports ?? this.config.environment?.ports ?? [];
  }

  /** Ports of the sandbox's own machinery where the agent's network is: OpenCode's and the bridge's. */
  agentPortsOwn(): Set<number> {
    const oc = this.opencode;
    const own = new Set<number>(oc.port ? [oc.port] : []);
    if (oc.namespaceDir) for (const p of [INNER_OPENCODE_PORT, INNER_PROXY_PORT]) own.add(p);
    else own.add(this.egress.port);
    return own;
  }

  /** The TCP ports the agent's processes listen on, OpenCode's own and the bridge's left out. */
  agentPorts(): number[] {
    return agentListeningPorts(this.opencode.rootPid, this.config.isolation, this.agentPortsOwn());
  }

  /**
   * The TCP ports the environment's start commands listen on. They share sandboxd's loopback
   * (environment.ts), not the agent's closed network, so a preview of one connects directly.
   */
  servicePorts(): number[] {
    const own = new Set([this.opencode.port, this.egress.port].filter((p): p is number => !!p));
    const ports = new Set<number>();
    for (const pid of this.environment.servicePids())
      for (const p of agentListeningPorts(pid, "bubblewrap", own)) ports.add(p);
    return [...ports].sort((a, b) => a - b);
  }

  /** Reserves the sandbox for one checkpoint/export/restore; returns the release. */
  reserve(kind: Operation): () => void {
    if (this.operation) {
      throw new AlpineError("operation_in_progress", `a ${this.operation} is running in this sandbox`, {
        operation: this.operation,
      });
    }
    this.operation = kind;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.operation = null;
    };
  }

  /**
   * Where a fresh UI login lands: OpenCode's page of the task session (or the
   * newest session of this workspace), else the workspace's project page.
   * OpenCode's routes are /<base64url(dir)>[/session/<id>].
   */
  async uiPath(): Promise<string> {
    if (this.phase !== "ready") return "/";
    const dir = Buffer.from(this.config.workspace_dir).toString("base64url");
    const session =
      this.agent.conversation ??
      this.agent.sessionId ??
      (await this.agent.latestSession(this.config.workspace_dir));
    return session ? `/${dir}/session/${encodeURIComponent(session)}` : `/${dir}`;
  }

  /**
   * Setup failed after the checkout: the sandbox stays for inspection (docs/environments.md,
   * "Setup"): its status, log, UI, diff and a checkpoint work; it takes no task.
   */
  get keptForInspection(): boolean {
    return this.phase === "failed" && this.error?.reason_code === "setup_failed";
  }

  /** The workspace can be read (diff, checkpoint): ready, or kept for inspection after a failed setup. */
  requireWorkspace(): void {
    if (this.keptForInspection) return;
    this.requireReady();
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
    this.notifier?.close();
    await this.environment.stopServices();
    this.agent.close();
    await this.opencode.stop();
    this.egress.close();
    rmSync(this.shadowDir, { recursive: true, force: true });
  }
}

/** Every string inside a value (auth entries: all of them are secret). */
function allStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const v of value) allStrings(v, out);
  else if (value && typeof value === "object") for (const v of Object.values(value)) allStrings(v, out);
  return out;
}
