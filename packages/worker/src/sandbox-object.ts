import { DurableObject } from "cloudflare:workers";
import {
  type AlpineConfig,
  assertAdmin,
  assertMayAct,
  CONTROL_PLANE_ROUTES,
  CONTROL_PLANE_TASK_WAIT,
  exitCheckpointToCollect,
  listItemView,
  noteEvent,
  type OperationContext,
  type Orchestrator,
  ROUTE_ACCESS,
  type RouteInput,
  type RouteName,
  routeOf,
  SandboxdClient,
  type SandboxRecord,
  type SandboxRouteName,
  silentProgress,
  toAlpineError,
  validateName,
} from "@alpine/core";
import { decideAfterProbe, LIVE_STATES, nextAlarmIn, planAlarm } from "./alarm-policy.ts";
import { inactivityMsOf } from "./container-object.ts";
import { DoStateStore } from "./do-store.ts";
import type { Env } from "./env.ts";
import { type GithubOrigin, rememberOrigin, reportToGithub } from "./github-front.ts";
import { errorResponse } from "./http.ts";
import { auditLine, type Principal, principalOf } from "./identity.ts";
import { keptConfig } from "./kept-config.ts";
import { ObjectNotifier } from "./notify-object.ts";
import {
  NO_SCOPE,
  type RequestScope,
  type SandboxWiring,
  sandboxOrchestrator,
  scopeOf,
} from "./orchestrator-wiring.ts";
import { collectPrepared, R2PreparedStore, stagingPreparations } from "./prepared-store.ts";
import { profilesOf } from "./profiles.ts";
import { ContainerProvider } from "./providers/container.ts";
import { DevHostProvider } from "./providers/dev-host.ts";
import type { ControlPlaneProvider } from "./providers/types.ts";
import { R2CheckpointStore } from "./r2-store.ts";
import { dispatchRoute } from "./sandbox-routes.ts";
import { PREVIEWS_NEED_UI_HOST, previewLink, uiLinks, uiParentHost } from "./ui-origin.ts";
import { proxyUi, UiConnections } from "./ui-proxy.ts";

/**
 * One Durable Object per sandbox name. It runs the same core operations and
 * Orchestrator as the CLI: its SQLite storage is the StateStore (records,
 * events, leases), R2 the CheckpointStore, a Container (or, under `alpine
 * cloud dev`, the dev container host) the Provider. Requests come from the
 * Worker as `/<route name>` (sandbox-routes.ts) or `/ui/…` (ui-proxy.ts); its
 * alarm follows alarm-policy.ts.
 */
export class SandboxObject extends DurableObject<Env> {
  private readonly store: DoStateStore;
  /** Lease holder identity of this instance: a restarted object owns none of the old leases. */
  private readonly pid = 1 + Math.floor(Math.random() * 2_000_000_000);
  private providerInstance: ControlPlaneProvider | null = null;
  private lastActive = 0;
  /** The last request that was use of the sandbox (not a status or logs read): suspension's idle clock. */
  private lastUse = 0;
  /** Operations of this instance still running (a streamed one outlives its client). */
  private inFlight = 0;
  /** When the alarm's policy is next due (0: at the next alarm; a new instance runs it at once). */
  private policyDueAt = 0;
  /** Web UI event streams open through this object: activity for the alarm (ui-proxy.ts). */
  private readonly ui = new UiConnections();
  /** Config `notify`'s notifications, sent by this object on Cloudflare (notify-object.ts). */
  private readonly notifier: ObjectNotifier;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new DoStateStore(ctx.storage, (record) => this.publish(record));
    this.notifier = new ObjectNotifier(
      ctx.storage,
      this.store,
      env.ALPINE_CONTROL_PLANE_TOKEN,
      () => keptConfig(this.env, this.store),
      () => this.scheduleAlarm(this.name),
    );
  }

  // ---------- wiring ----------

  private get name(): string | null {
    return this.store.getKv("name");
  }

  private intervalMs(): number {
    return Math.max(1, Number(this.env.ALARM_INTERVAL_SECONDS ?? 60)) * 1000;
  }

  private inactivityMs(): number {
    return inactivityMsOf(this.env);
  }

  private provider(): ControlPlaneProvider {
    if (!this.providerInstance) {
      this.providerInstance = this.env.ALPINE_CONTAINER_HOST_URL
        ? new DevHostProvider(this.env.ALPINE_CONTAINER_HOST_URL, this.env.ALPINE_CONTAINER_HOST_TOKEN ?? "")
        : new ContainerProvider(
            this.env,
            profilesOf(this.env),
            () => this.profileOfCurrent(),
            this.inactivityMs(),
          );
    }
    return this.providerInstance;
  }

  /** The sandbox's record as stored (synchronous: SQLite), or null before its first launch. */
  private currentRecord(): SandboxRecord | null {
    const name = this.name;
    const row = name
      ? this.ctx.storage.sql
          .exec<{ record: string }>("SELECT record FROM sandboxes WHERE name = ?", name)
          .toArray()[0]
      : undefined;
    return row ? (JSON.parse(row.record) as SandboxRecord) : null;
  }

  private sandboxd(endpoint: { url: string; token: string }): SandboxdClient {
    return new SandboxdClient({
      baseUrl: endpoint.url,
      token: endpoint.token,
      fetch: this.provider().fetchFor(endpoint.url),
    });
  }

  /**
   * prepared environments: once a runtime is ready (after its setup), the preparations its
   * sandboxd saved are copied into R2 (prepared-store.ts), once per runtime; a failure is
   * retried at the record's next change.
   */
  private collectedRuntimes = new Set<string>();
  private async collectPreparations(record: SandboxRecord): Promise<void> {
    if (!record.runtime || (record.state !== "running" && record.state !== "completed")) return;
    const runtime = JSON.stringify(record.runtime.handle);
    if (this.collectedRuntimes.has(runtime)) return;
    this.collectedRuntimes.add(runtime);
    try {
      const endpoint = await this.provider().endpoint(record.runtime.handle);
      if (!endpoint) return;
      const copied = await collectPrepared(
        new R2PreparedStore(this.env.CHECKPOINTS),
        this.sandboxd(endpoint),
      );
      if (copied.length)
        console.log("alpine: prepared environments stored in R2", { name: record.name, copied });
    } catch (err) {
      this.collectedRuntimes.delete(runtime);
      console.warn("alpine: copying the prepared environment to R2 failed; the next change retries", {
        name: record.name,
        error: String((err as Error).message ?? err),
      });
    }
  }

  private profileOfCurrent(): string {
    return this.currentRecord()?.image_profile ?? "default";
  }

  private wiring(): SandboxWiring {
    return {
      env: this.env,
      store: this.store,
      // prepared environments: the repo's latest preparation is staged into each new runtime (prepared-store.ts).
      provider: stagingPreparations(
        this.provider(),
        new R2PreparedStore(this.env.CHECKPOINTS),
        (sandboxId) => (this.currentRecord()?.id === sandboxId ? (this.currentRecord()?.repo ?? null) : null),
        (endpoint) => this.sandboxd(endpoint),
      ),
      checkpoints: new R2CheckpointStore(this.env.CHECKPOINTS, this.env.CHECKPOINT_PREFIX ?? "sandboxes"),
      host: {
        host: `do:${this.ctx.id.toString().slice(0, 16)}`,
        pid: this.pid,
        isProcessAlive: (pid) => pid === this.pid,
      },
    };
  }

  private orchestrator(config: AlpineConfig, scope: RequestScope = NO_SCOPE): Orchestrator {
    return sandboxOrchestrator(this.wiring(), config, scope);
  }

  /** The operations' context: the web UI and its login link are served under the Worker's origin. */
  private async operations(
    route: SandboxRouteName,
    input: RouteInput<SandboxRouteName>,
    origin: string,
  ): Promise<OperationContext> {
    const fields = input as { config?: Record<string, unknown> } & Parameters<typeof scopeOf>[0];
    const config = await keptConfig(
      this.env,
      this.store,
      CONTROL_PLANE_ROUTES[route].mutates ? fields.config : undefined,
    );
    // The webhook secrets a launch or task brought (notify-object.ts): kept sealed for the alarm.
    const notifySecrets = (input as { notify_secrets?: Record<string, string> }).notify_secrets;
    if (notifySecrets) await this.notifier.keepSecrets(notifySecrets);
    return {
      orchestrator: this.orchestrator(config, scopeOf(fields)),
      config,
      progress: silentProgress,
      runtimeLogs: (record, tail) =>
        record.runtime ? this.provider().logs(record.runtime.handle, { tail }) : Promise.resolve([]),
      webUrl: (record) => (record.runtime ? uiLinks(this.env, origin, record.name).web : null),
      loginUrl: (record, code) => uiLinks(this.env, origin, record.name).login(code),
      // previews: each port at `<name>--p<port>.<parent host>`; none on a workers.dev URL.
      ...(uiParentHost(this.env, origin) === null
        ? { previewsUnavailable: PREVIEWS_NEED_UI_HOST }
        : {
            previewUrl: (record: SandboxRecord, path: string, port: number) =>
              previewLink(this.env, origin, record.name, port, path) ?? "",
          }),
      // One request pays a subrequest or more per probe: probe rarely, and a bounded number of times.
      taskWait: CONTROL_PLANE_TASK_WAIT,
    };
  }

  /** Keeps the registry's `list` entry in step with the record (best effort: the record is the truth). */
  private async publish(record: SandboxRecord): Promise<void> {
    // A request's reconcile (status, task --wait, launch) may be the first to see the agent done.
    this.ctx.waitUntil(this.deliverSignals(record));
    // prepared environments: what this runtime's setup produced goes to R2.
    this.ctx.waitUntil(this.collectPreparations(record));
    try {
      await this.env.REGISTRY.getByName("registry").upsert(listItemView(record), record.updated_at);
    } catch (err) {
      // The next write reports it again.
      console.warn("alpine: the registry did not take the sandbox's summary", {
        name: record.name,
        error: String(err),
      });
    }
  }

  /**
   * Arms the next alarm when it is due sooner than the one armed (or none is): every interval while
   * the sandbox is live, every KEEP_ALIVE_MS while an operation runs (alarm-policy.ts,
   * `nextAlarmIn`). A failure waits for the next request or alarm.
   */
  private async scheduleAlarm(name: string | null): Promise<void> {
    try {
      const record = name ? await this.store.get(name) : null;
      const inMs = nextAlarmIn({
        live: record !== null && LIVE_STATES.has(record.state),
        operationsInFlight: this.inFlight,
        intervalMs: this.intervalMs(),
      });
      // A notification's retry is due (even for a sandbox no longer live): the alarm sends it.
      const retryAt = this.notifier.nextDueAt();
      if (inMs === null && retryAt === null) return;
      const at = Math.min(
        inMs === null ? Number.POSITIVE_INFINITY : Date.now() + inMs,
        retryAt === null ? Number.POSITIVE_INFINITY : Math.max(Date.now(), retryAt),
      );
      const armed = await this.ctx.storage.getAlarm();
      if (armed === null || armed > at) await this.ctx.storage.setAlarm(at);
    } catch (err) {
      console.warn("alpine: scheduling the sandbox's alarm failed", { name, error: String(err) });
    }
  }

  /**
   * An operation begins. Until the compatibility date 2026-10-01 (which this workerd does not
   * know yet), work left in `waitUntil` after its client went away does not keep a Durable Object
   * from being evicted (after 70-140 s without events): an alarm every KEEP_ALIVE_MS while it runs
   * is such an event (docs/cloudflare.md, "Work that outlives its request").
   */
  private async beginOperation(name: string): Promise<() => void> {
    this.inFlight++;
    await this.scheduleAlarm(name);
    let ended = false;
    return () => {
      if (!ended) this.inFlight--;
      ended = true;
    };
  }

  // ---------- HTTP (from the Worker) ----------

  override async fetch(request: Request): Promise<Response> {
    try {
      const url = new URL(request.url);
      const name = request.headers.get("x-alpine-name") ?? "";
      const origin = request.headers.get("x-alpine-origin") ?? url.origin;
      validateName(name);
      if (this.name === null) this.store.setKv("name", name);
      this.lastActive = Date.now();
      // Reading how a sandbox is (status, logs: a poller, the CLI's list) never keeps it from suspending.
      const read = routeOf(request.method, url.pathname.replace(/^\/+/, ""));
      if (read !== "status" && read !== "logs") this.lastUse = this.lastActive;
      const op = url.pathname.replace(/^\/+/, "");
      if (op.startsWith("ui/") || op === "ui") {
        const path = url.pathname.slice("/ui".length) || "/";
        let record = await this.store.get(name);
        if (record?.state === "suspended") {
          // A web UI request resumes a suspended sandbox (as a command that needs it does).
          const end = await this.beginOperation(name);
          try {
            record = await this.orchestrator(await keptConfig(this.env, this.store)).resume(name);
          } finally {
            end();
          }
        }
        return await proxyUi(request, record, name, this.provider(), path, url.search, this.ui);
      }
      const route = routeOf(request.method, op);
      const principal = principalOf(request);
      if (route) await this.gate(name, route, principal);
      const response = await this.dispatchClaimed(name, route, () =>
        dispatchRoute(request, op, {
          name,
          audited: (r, outcome) => this.audited(name, r, principal, outcome),
          operations: (route, input) => this.operations(route, input, origin),
          beginOperation: () => this.beginOperation(name),
          afterStream: () => this.scheduleAlarm(name),
          keepAlive: (p) => this.ctx.waitUntil(p),
        }),
      );
      // Streamed operations change state after this point; they schedule again when they end.
      await this.scheduleAlarm(name);
      return response;
    } catch (err) {
      return errorResponse(err);
    }
  }

  // ---------- who may (identity.ts, core's permissions.ts) ----------

  /**
   * Refuses a route to anyone but the sandbox's owner or an admin (`forbidden`, written to the
   * audit log). The owner is whoever first launched the sandbox: it is claimed here, before the
   * launch runs, so two people launching the same new name cannot both own it.
   */
  private async gate(name: string, route: RouteName, principal: Principal | null): Promise<void> {
    try {
      if (ROUTE_ACCESS[route] === "admin") return assertAdmin(principal, `\`${route}\``);
      if (ROUTE_ACCESS[route] !== "owner") return;
      const record = await this.store.get(name);
      const owner = this.store.getKv("owner") ?? record?.owner ?? null;
      if (record || owner) return assertMayAct(principal, { name, owner });
      // A name nobody has launched: the launch claims it; anything else finds no sandbox.
      assertMayAct(principal && { ...principal, admin: true }, { name, owner: null });
      if (route === "launch" && principal) this.store.setKv("owner", principal.id);
    } catch (err) {
      if (CONTROL_PLANE_ROUTES[route].mutates) {
        await auditLine(this.env, {
          principal: principal?.id ?? "anonymous",
          action: route,
          sandbox: name,
          outcome: toAlpineError(err).reason,
        });
      }
      throw err;
    }
  }

  /** Runs a dispatch; a launch refused before it ran (e.g. a bad request) gives back its claim on a new name. */
  private async dispatchClaimed(name: string, route: RouteName | null, run: () => Promise<Response>) {
    try {
      return await run();
    } catch (err) {
      if (route === "launch" && !(await this.store.get(name))) this.store.setKv("owner", null);
      throw err;
    }
  }

  /** A mutating route ended: the audit log's line; a launch that created nothing gives its claim back. */
  private async audited(name: string, route: RouteName, principal: Principal | null, outcome: string) {
    if (route === "launch" && !(await this.store.get(name))) this.store.setKv("owner", null);
    await auditLine(this.env, {
      principal: principal?.id ?? "anonymous",
      action: route,
      sandbox: name,
      outcome,
    });
  }

  // ---------- alarm ----------

  /**
   * Carries out alarm-policy.ts's plan for this sandbox. The next alarm is armed in `finally`,
   * whatever the policy did: a handler that throws is retried by the platform only a few times
   * and then dropped, which would end the chain for good (no keep-alive, no save before the
   * container's timeout, no auto-teardown). A failure is logged; the next alarm is the retry.
   */
  override async alarm(): Promise<void> {
    const name = this.name;
    try {
      // Notifications whose retry is due (notify-object.ts); a failure waits for the next alarm.
      await this.notifier.deliverDue().catch((err: unknown) => {
        console.warn("alpine: sending the sandbox's notifications failed", { name, error: String(err) });
      });
      // An alarm armed only to keep running operations alive: the policy waits for its interval.
      if (this.inFlight > 0 && Date.now() < this.policyDueAt) return;
      this.policyDueAt = Date.now() + this.intervalMs();
      if (name) await this.runPolicy(name);
    } catch (err) {
      console.error("alpine: the sandbox's alarm failed; the next one tries again", {
        name,
        error: toAlpineError(err).toJSON(),
      });
    } finally {
      await this.scheduleAlarm(name);
    }
  }

  private async runPolicy(name: string): Promise<void> {
    const config = await keptConfig(this.env, this.store);
    const o = this.orchestrator(config);
    const stored = await this.store.get(name);
    if (!stored) return;
    let record = await o.settle(stored);
    const facts = {
      record,
      now: Date.now(),
      lastRequestAt: Math.max(this.lastActive, this.ui.lastClosedAt),
      lastUseAt: Math.max(this.lastUse, this.ui.lastClosedAt),
      uiConnectionsOpen: this.ui.open,
      intervalMs: this.intervalMs(),
      inactivityMs: this.inactivityMs(),
      sandbox: config.sandbox,
    };
    const plan = planAlarm(facts);
    if (plan.kind !== "probe") return;
    const probe = await o.probe(record);
    record = await o.reconcile(record, probe);
    await this.deliverSignals(record);
    await this.reportToGithub(record);
    const agentBusy = probe.status ? o.blockers(record, probe, null).includes("agent_busy") : false;
    const decision = decideAfterProbe(facts, plan, {
      record,
      reachable: probe.state === "ok",
      agentBusy,
      exitCheckpointHeld: exitCheckpointToCollect(record, probe) !== null,
    });
    if (decision.collectExitCheckpoint) return this.collectExitCheckpoint(o, record);
    if (decision.renew && record.runtime) await this.renew(name, record);
    if (decision.teardown) {
      await this.tearDown(
        o,
        record,
        decision.teardown,
        decision.teardownBecause === "retention" ? "gc" : "teardown",
      );
    }
    if (decision.suspend) await this.suspend(o, record, decision.suspend, facts.lastUseAt);
  }

  /**
   * Notifications (config `notify`) the agent's state is newly worth, and retries that are due
   * (notify-object.ts). Never throws: a notification that fails must not stop the alarm's policy.
   */
  private async deliverSignals(record: SandboxRecord): Promise<void> {
    try {
      await this.notifier.observe(record);
    } catch (err) {
      console.warn("alpine: the sandbox's notifications failed; the next look tries again", {
        name: record.name,
        error: String(err),
      });
    }
  }

  // ---------- GitHub's front door (github-front.ts) ----------

  /** The Worker's webhook: this sandbox works for an issue or pull request (before it launches it). */
  async rememberGithub(name: string, origin: GithubOrigin): Promise<void> {
    validateName(name);
    if (this.name === null) this.store.setKv("name", name);
    rememberOrigin(this.store, origin);
  }

  /** Reports the agent's new state to the issue it was started from (once per task and signal). */
  private async reportToGithub(record: SandboxRecord): Promise<void> {
    await reportToGithub(
      {
        env: this.env,
        store: this.store,
        // The installation's token (github-app.ts), for this one push and pull request.
        exportWork: async (input, token) => {
          const config = await keptConfig(this.env, this.store);
          const scope = {
            credentials: { username: "x-access-token", password: token },
            githubToken: token,
            author: null,
          };
          return this.orchestrator(config, scope).export(record.name, input);
        },
      },
      record,
    );
  }

  /** The alarm's suspension; core's suspend asks sandboxd again holding the lease, so a busy agent is kept. */
  private async suspend(o: Orchestrator, record: SandboxRecord, reason: string, lastRequestAt: number) {
    try {
      const result = await o.suspend(record.name, { lastRequestAt, requestsInFlight: this.ui.open });
      if (!result.suspended) return;
    } catch (err) {
      // Kept (another operation holds the lease, the checkpoint failed); the next alarm tries again.
      console.warn("alpine: the alarm's suspension did not happen", {
        name: record.name,
        reason,
        error: toAlpineError(err).toJSON(),
      });
      await this.auditAlarm(record, "suspend", toAlpineError(err).reason);
      return;
    }
    await this.note(record, reason);
    await this.auditAlarm(record, "suspend", "ok");
  }

  /**
   * The container got SIGTERM (a rollout) and its sandboxd holds an exit checkpoint: copy it into
   * R2 and end the sandbox with it, so the next launch resumes with nothing lost. A failure (e.g.
   * another operation holds the lease) is retried by the next alarm while sandboxd still holds it.
   */
  private async collectExitCheckpoint(o: Orchestrator, record: SandboxRecord): Promise<void> {
    let result: Awaited<ReturnType<Orchestrator["collectExitCheckpoint"]>>;
    try {
      result = await o.collectExitCheckpoint(record.name);
    } catch (err) {
      await this.auditAlarm(record, "collect_exit_checkpoint", toAlpineError(err).reason);
      throw err;
    }
    if (!result) return;
    await this.auditAlarm(record, "collect_exit_checkpoint", "ok");
    await this.note(
      record,
      `the container was stopped by its platform (SIGTERM): its exit checkpoint ${result.checkpoint_id} was saved`,
    );
  }

  /**
   * audit of the alarm's own actions: what it did (or tried and failed) on nobody's request is in
   * the control plane's audit log as principal `system:alarm`, beside what people did.
   */
  private async auditAlarm(record: SandboxRecord, action: string, outcome: string): Promise<void> {
    await auditLine(this.env, { principal: "system:alarm", action, sandbox: record.name, outcome });
  }

  /** A note in the sandbox's event history: what the alarm did on its own, and why. */
  private async note(record: SandboxRecord, reason: string): Promise<void> {
    await this.store.appendEvents([noteEvent(record, reason)]);
  }

  /** Keeps a busy agent's container alive past its inactivity timeout (Containers only). */
  private async renew(name: string, record: SandboxRecord): Promise<void> {
    const provider = this.provider();
    if (!record.runtime || !(provider instanceof ContainerProvider)) return;
    try {
      await provider.renew(record.runtime.handle);
    } catch (err) {
      // The next alarm (well inside the inactivity timeout) renews again.
      console.warn("alpine: renewing the container failed", { name, error: String(err) });
    }
  }

  /** The alarm's teardown (without force: unsaved work is checkpointed first, or it refuses). */
  private async tearDown(
    o: Orchestrator,
    record: SandboxRecord,
    reason: string,
    action: "teardown" | "gc" = "teardown",
  ): Promise<boolean> {
    try {
      await o.teardown(record.name, { force: false });
    } catch (err) {
      // Kept (e.g. another operation holds the lease); the next alarm tries again.
      console.warn("alpine: the alarm's teardown did not happen", {
        name: record.name,
        reason,
        error: toAlpineError(err).toJSON(),
      });
      await this.auditAlarm(record, action, toAlpineError(err).reason);
      return false;
    }
    await this.note(record, reason);
    await this.auditAlarm(record, action, "ok");
    return true;
  }
}
