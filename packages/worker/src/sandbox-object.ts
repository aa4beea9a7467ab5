import { DurableObject } from "cloudflare:workers";
import {
  type AlpineConfig,
  AlpineError,
  type CheckpointExporter,
  type CheckpointManifest,
  ConfigSchema,
  checkpointView,
  exportView,
  type GitCredentials,
  type HostIdentity,
  type Ids,
  launchView,
  listItemView,
  Orchestrator,
  type Progress,
  RemoteCheckpointSchema,
  RemoteExportSchema,
  RemoteGcSchema,
  RemoteLaunchSchema,
  RemoteTaskSchema,
  RemoteTeardownSchema,
  type RuntimeHandle,
  SandboxdClient,
  type SandboxRecord,
  statusView,
  teardownView,
  toAlpineError,
  validateName,
  type WorkExport,
} from "@alpine/core";
import type { z } from "zod";
import { openJson, sealJson } from "./crypto.ts";
import { DoStateStore } from "./do-store.ts";
import type { Env } from "./env.ts";
import { FetchPullRequests, requiresAuth } from "./github.ts";
import { errorResponse, streamOperation } from "./http.ts";
import { ContainerProvider } from "./providers/container.ts";
import { DevHostProvider } from "./providers/dev-host.ts";
import type { ControlPlaneProvider } from "./providers/types.ts";
import { R2CheckpointStore } from "./r2-store.ts";

/** Per-request facts the orchestrator may need: never stored. */
interface RequestScope {
  credentials: GitCredentials | null;
  githubToken: string | null;
  author: { name: string; email: string } | null;
}

const LIVE = new Set(["running", "completed", "saving"]);
const NO_SCOPE: RequestScope = { credentials: null, githubToken: null, author: null };

/** Deployment's image profiles: profile → container binding (or "dev-host" under `alpine cloud dev`). */
export function profilesOf(env: Env): Record<string, string> {
  if (env.CONTAINER_PROFILES) {
    try {
      const parsed = JSON.parse(env.CONTAINER_PROFILES) as Record<string, string>;
      if (parsed && typeof parsed === "object") return parsed;
    } catch {
      // fall through to the default
    }
  }
  return { default: "SANDBOX_CONTAINER" };
}

/**
 * One Durable Object per sandbox name. It runs the same core Orchestrator as
 * the CLI: its SQLite storage is the StateStore (records, events, leases), R2
 * the CheckpointStore, a Container (or, under `alpine cloud dev`, the dev
 * container host) the Provider. Its alarm renews a busy sandbox's container,
 * saves work before an idle container would stop, and runs auto-teardown.
 */
export class SandboxObject extends DurableObject<Env> {
  private readonly store: DoStateStore;
  /** Lease holder identity of this instance: a restarted object owns none of the old leases. */
  private readonly pid = 1 + Math.floor(Math.random() * 2_000_000_000);
  private providerInstance: ControlPlaneProvider | null = null;
  private lastActive = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new DoStateStore(ctx.storage, (record) => this.publish(record));
  }

  // ---------- wiring ----------

  private get name(): string | null {
    return this.store.getKv("name");
  }

  private intervalMs(): number {
    return Math.max(1, Number(this.env.ALARM_INTERVAL_SECONDS ?? 60)) * 1000;
  }

  private inactivityMs(): number {
    return Math.max(10, Number(this.env.CONTAINER_INACTIVITY_SECONDS ?? 600)) * 1000;
  }

  private provider(): ControlPlaneProvider {
    if (!this.providerInstance) {
      const profiles = profilesOf(this.env);
      this.providerInstance = this.env.ALPINE_CONTAINER_HOST_URL
        ? new DevHostProvider(this.env.ALPINE_CONTAINER_HOST_URL, this.env.ALPINE_CONTAINER_HOST_TOKEN ?? "")
        : new ContainerProvider(this.env, profiles, () => this.profileOfCurrent(), this.inactivityMs());
    }
    return this.providerInstance;
  }

  private profileOfCurrent(): string {
    const name = this.name;
    const row = name
      ? this.ctx.storage.sql
          .exec<{ record: string }>("SELECT record FROM sandboxes WHERE name = ?", name)
          .toArray()[0]
      : undefined;
    return row ? (JSON.parse(row.record) as SandboxRecord).image_profile : "default";
  }

  private checkpoints(): R2CheckpointStore {
    return new R2CheckpointStore(this.env.CHECKPOINTS, this.env.CHECKPOINT_PREFIX ?? "sandboxes");
  }

  /** The config a request brought (kept, sealed) or the one kept from earlier requests. */
  private async config(fromRequest?: Record<string, unknown>): Promise<AlpineConfig> {
    let raw: Record<string, unknown> = {};
    if (fromRequest) {
      raw = fromRequest;
      this.store.setKv("config", await sealJson(this.env.ALPINE_CONTROL_PLANE_TOKEN, "config", raw));
    } else {
      const sealed = this.store.getKv("config");
      if (sealed)
        raw = await openJson<Record<string, unknown>>(
          this.env.ALPINE_CONTROL_PLANE_TOKEN,
          "config",
          sealed,
        ).catch(() => ({}));
    }
    const parsed = ConfigSchema.safeParse(raw);
    if (!parsed.success) {
      throw new AlpineError("config_invalid", "the configuration sent to the control plane is invalid", {
        issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
      });
    }
    const config = parsed.data;
    // What this deployment offers wins over the client's view of it.
    const profiles = this.env.ALPINE_CONTAINER_HOST_URL
      ? Object.fromEntries(Object.keys(profilesOf(this.env)).map((p) => [p, "dev-host"]))
      : profilesOf(this.env);
    return {
      ...config,
      sandbox: { ...config.sandbox, provider: "cloudflare", image_profiles: profiles },
    };
  }

  private orchestrator(config: AlpineConfig, scope: RequestScope = NO_SCOPE): Orchestrator {
    const host: HostIdentity = {
      host: `do:${this.ctx.id.toString().slice(0, 16)}`,
      pid: this.pid,
      isProcessAlive: (pid) => pid === this.pid,
    };
    const ids: Ids = {
      sandboxId: () => `sbx_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`,
      operationId: () => `op_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`,
    };
    const provider = this.provider();
    const checkpoints = this.checkpoints();
    const registry = this.env.REGISTRY.getByName("registry");
    const deps = {
      store: this.store,
      clock: {
        now: () => Date.now(),
        every(ms: number, fn: () => void) {
          const t = setInterval(fn, ms);
          return () => clearInterval(t);
        },
        sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
      },
      ids,
      host,
      config,
      provider: () => provider,
      connect: (endpoint: { url: string; token: string }) =>
        new SandboxdClient({
          baseUrl: endpoint.url,
          token: endpoint.token,
          fetch: provider.fetchFor(endpoint.url),
        }),
      credentialsFor: async () => scope.credentials,
      authEntries: async () => {
        const all = await registry.getAuth();
        return Object.fromEntries(
          config.opencode.auth_providers.filter((p) => Object.hasOwn(all, p)).map((p) => [p, all[p]]),
        );
      },
      checkpoints,
      checkpointExporter: null as unknown as CheckpointExporter,
      pullRequests: new FetchPullRequests(config, scope.githubToken),
      gitAuthor: async () => scope.author ?? { name: "alpine", email: "alpine@localhost" },
      requiresAuth: (repo: string) => requiresAuth(repo, config),
    };
    deps.checkpointExporter = new RuntimeCheckpointExporter(
      provider,
      checkpoints,
      (endpoint) => deps.connect(endpoint),
      config,
    );
    return new Orchestrator(deps);
  }

  /** Keeps the registry's `list` entry in step with the record (best effort: the record is the truth). */
  private async publish(record: SandboxRecord): Promise<void> {
    try {
      await this.env.REGISTRY.getByName("registry").upsert(listItemView(record), record.updated_at);
    } catch {
      // The next write reports it again.
    }
  }

  private touch(): void {
    this.lastActive = Date.now();
  }

  private async scheduleAlarm(record: SandboxRecord | null): Promise<void> {
    if (!record || !LIVE.has(record.state)) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null) await this.ctx.storage.setAlarm(Date.now() + this.intervalMs());
  }

  // ---------- HTTP (from the Worker) ----------

  override async fetch(request: Request): Promise<Response> {
    try {
      const url = new URL(request.url);
      const name = request.headers.get("x-alpine-name") ?? "";
      const origin = request.headers.get("x-alpine-origin") ?? url.origin;
      validateName(name);
      if (this.name === null) this.store.setKv("name", name);
      this.touch();
      const op = url.pathname.replace(/^\/+/, "");
      if (op.startsWith("ui/") || op === "ui") return await this.ui(request, name, url);
      const result = await this.route(request, op, name, origin, url);
      // Streamed operations change state after this point; they schedule again when they end.
      await this.scheduleAlarm(await this.store.get(name)).catch(() => {});
      return result;
    } catch (err) {
      return errorResponse(err);
    }
  }

  private async route(
    request: Request,
    op: string,
    name: string,
    origin: string,
    url: URL,
  ): Promise<Response> {
    const webUrl = (r: SandboxRecord) => (r.runtime ? `${origin}/s/${r.name}/` : null);
    const body = async <T>(schema: z.ZodType<T>): Promise<T> => {
      const text = await request.text();
      let value: unknown = {};
      if (text.trim()) {
        try {
          value = JSON.parse(text);
        } catch {
          throw new AlpineError("usage_invalid", "request body is not valid JSON");
        }
      }
      const parsed = schema.safeParse(value);
      if (!parsed.success) {
        throw new AlpineError("usage_invalid", "request body is invalid", {
          issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
        });
      }
      return parsed.data;
    };
    const stream = (fn: (progress: Progress) => Promise<unknown>) =>
      streamOperation(
        request,
        async (progress) => {
          try {
            return await fn(progress);
          } finally {
            await this.scheduleAlarm(await this.store.get(name)).catch(() => {});
          }
        },
        (p) => this.ctx.waitUntil(p),
      );

    switch (`${request.method} ${op}`) {
      case "GET status":
        return json(await this.status(name, webUrl));
      case "POST launch": {
        const input = await body(RemoteLaunchSchema);
        const config = await this.config(input.config);
        const scope = { ...NO_SCOPE, credentials: input.credentials ?? null };
        return stream(async (progress) => {
          const result = await this.orchestrator(config, scope).launch(
            {
              name,
              repo: input.repo,
              ref: input.ref,
              image_profile: input.image_profile,
              provider: "cloudflare",
              task: input.task,
              force_recreate: input.force_recreate,
            },
            progress,
          );
          return launchView(result, webUrl(result.record));
        });
      }
      case "POST task": {
        const input = await body(RemoteTaskSchema);
        const config = await this.config(input.config);
        return stream(async (progress) => {
          const o = this.orchestrator(config);
          const sent = await o.task(name, input.prompt);
          let record = sent.record;
          if (input.wait) {
            progress.step("waiting for the agent to finish");
            record = await o.waitForTask(name);
          }
          return { name, session_id: sent.session_id, state: record.state };
        });
      }
      case "GET diff": {
        const o = this.orchestrator(await this.config());
        const stat = ["1", "true"].includes(url.searchParams.get("stat") ?? "");
        const diff = await (await o.connect(await o.get(name))).diff({ stat });
        return json({ name, files: diff.files, patch: stat ? "" : (diff.patch ?? "") });
      }
      case "POST login": {
        const o = this.orchestrator(await this.config());
        const record = await o.get(name);
        const { code, expires_at } = await (await o.connect(record)).login();
        return json({ name, web_url: `${origin}/s/${name}/?code=${encodeURIComponent(code)}`, expires_at });
      }
      case "POST checkpoint": {
        const input = await body(RemoteCheckpointSchema);
        const config = await this.config(input.config);
        return stream(async (progress) =>
          checkpointView(name, await this.orchestrator(config).checkpoint(name, progress)),
        );
      }
      case "POST export": {
        const input = await body(RemoteExportSchema);
        const config = await this.config(input.config);
        const scope: RequestScope = {
          credentials: input.credentials ?? null,
          githubToken: input.github_token ?? null,
          author: input.author ?? null,
        };
        return stream(async (progress) => {
          const result = await this.orchestrator(config, scope).export(
            name,
            {
              branch: input.branch,
              pr: input.pr,
              patch: input.patch,
              from_checkpoint: input.from_checkpoint,
            },
            progress,
          );
          // The patch text is not part of export's --json output; the CLI writes it to --patch FILE.
          return { ...exportView(name, result), ...(input.patch ? { patch: result.work.patch ?? "" } : {}) };
        });
      }
      case "POST teardown": {
        const input = await body(RemoteTeardownSchema);
        const config = await this.config(input.config);
        const forced = Boolean(input.force);
        return stream(async (progress) =>
          teardownView(
            name,
            await this.orchestrator(config).teardown(name, { force: forced }, progress),
            forced,
          ),
        );
      }
      case "GET logs": {
        const o = this.orchestrator(await this.config());
        const record = await o.get(name);
        const after = Number(url.searchParams.get("after_seq") ?? 0);
        const tail = Number(url.searchParams.get("tail") ?? 200);
        const events = await o.events(name, { afterSeq: Number.isFinite(after) ? after : 0 });
        const lines = record.runtime
          ? await this.provider()
              .logs(record.runtime.handle, { tail })
              .catch(() => [])
          : [];
        return json({ name, events, lines });
      }
      case "POST gc": {
        const input = await body(RemoteGcSchema);
        const config = await this.config(input.config);
        return json(await this.orchestrator(config).gc({ dryRun: Boolean(input.dry_run) }));
      }
      case "GET summary": {
        const record = await this.store.get(name);
        return json(record ? listItemView(record) : null);
      }
    }
    throw Object.assign(new AlpineError("usage_invalid", `no such operation: ${request.method} ${op}`), {
      httpStatus: 404,
    });
  }

  private async status(name: string, webUrl: (r: SandboxRecord) => string | null) {
    const config = await this.config();
    const o = this.orchestrator(config);
    // An operation that died with its object instance left a state that is no longer true: settle it first.
    let record = await o.settle(await o.get(name));
    const probe = await o.probe(record);
    record = await o.reconcile(record, probe);
    const lease = await o.activeLease(name);
    return statusView(o, record, probe, lease, config, webUrl(record));
  }

  /**
   * The web UI, proxied to sandboxd (which checks its own login cookie). The
   * Worker strips its routing cookie before the request gets here.
   */
  private async ui(request: Request, name: string, url: URL): Promise<Response> {
    const record = await this.store.get(name);
    const path = url.pathname.slice("/ui".length) || "/";
    if (!record?.runtime || !LIVE.has(record.state)) {
      return htmlPage(
        404,
        "Sandbox not running",
        `Sandbox '${name}' is ${record?.state ?? "unknown"}. Run \`alpine launch ${name}\`, then \`alpine open ${name}\`.`,
      );
    }
    const provider = this.provider();
    const endpoint = await provider.endpoint(record.runtime.handle).catch(() => null);
    if (!endpoint)
      return htmlPage(503, "Sandbox unavailable", `Sandbox '${name}' does not answer right now.`);
    // Set the path on sandboxd's URL rather than resolving it against it: a path like
    // `//other.host/x` must stay a path on sandboxd, never become another host.
    const target = new URL(endpoint.url);
    target.pathname = path;
    target.search = url.search;
    const headers = new Headers(request.headers);
    for (const h of [
      "x-alpine-name",
      "x-alpine-origin",
      "cf-connecting-ip",
      "x-forwarded-for",
      "authorization",
    ])
      headers.delete(h);
    const init: RequestInit & { duplex?: "half" } = {
      method: request.method,
      headers,
      body: request.method === "GET" || request.method === "HEAD" ? undefined : request.body,
      redirect: "manual",
    };
    if (init.body) init.duplex = "half";
    return provider.fetchFor(endpoint.url)(target.toString(), init);
  }

  // ---------- alarm ----------

  /**
   * While a sandbox is live: reconcile its state, keep a busy agent's
   * container alive, save unsaved work of an idle sandbox before its
   * container's inactivity timeout would stop it (then tear it down, so the
   * state says `destroyed` and `alpine launch` resumes it), and tear down a
   * `completed` sandbox whose retention has passed (DESIGN §3).
   */
  override async alarm(): Promise<void> {
    const name = this.name;
    if (!name) return;
    const config = await this.config();
    const o = this.orchestrator(config);
    const stored = await this.store.get(name);
    let record = stored ? await o.settle(stored) : null;
    if (!record || !LIVE.has(record.state)) return;
    const now = Date.now();
    const lastActive = Math.max(this.lastActive, Date.parse(record.last_activity ?? record.updated_at) || 0);
    const idleFor = now - lastActive;
    const nearTimeout = idleFor >= this.inactivityMs() - 2 * this.intervalMs();
    const busy = record.agent === "busy" || record.agent === "retry" || record.state === "saving";

    if (busy || nearTimeout || record.state === "completed") {
      const probe = await o.probe(record);
      record = await o.reconcile(record, probe);
      const stillBusy = probe.status ? o.blockers(record, probe, null).includes("agent_busy") : false;
      if (stillBusy && record.runtime && "renew" in this.provider()) {
        await (this.provider() as ContainerProvider).renew(record.runtime.handle).catch(() => false);
      }
      const retentionDue =
        record.state === "completed" &&
        config.sandbox.auto_teardown &&
        now >=
          Date.parse(record.task?.finished_at ?? record.updated_at) +
            config.sandbox.completed_retention_minutes * 60_000;
      if (!stillBusy && probe.state === "ok" && (retentionDue || nearTimeout)) {
        try {
          // Teardown without force checkpoints unsaved work first, and refuses when it cannot.
          await o.teardown(name, { force: false });
          await this.store.appendEvents([
            {
              sandbox_id: record.id,
              name,
              at: new Date().toISOString(),
              kind: "note",
              from: null,
              to: null,
              operation_id: null,
              reason: retentionDue
                ? `auto-teardown: completed ${config.sandbox.completed_retention_minutes} min ago`
                : `idle ${Math.round(idleFor / 1000)} s: saved and stopped before the container's inactivity timeout`,
            },
          ]);
          return;
        } catch (err) {
          // Kept (e.g. another operation holds the lease); try again at the next alarm.
          void toAlpineError(err);
        }
      }
    }
    record = await this.store.get(name);
    if (record && LIVE.has(record.state)) await this.ctx.storage.setAlarm(Date.now() + this.intervalMs());
  }
}

/**
 * Export from a checkpoint when the sandbox's runtime is gone: the control
 * plane cannot run git itself, so it starts a short-lived runtime, restores
 * the checkpoint into it, exports from there (push or patch), and removes it.
 */
class RuntimeCheckpointExporter implements CheckpointExporter {
  constructor(
    private readonly provider: ControlPlaneProvider,
    private readonly store: R2CheckpointStore,
    private readonly connect: (endpoint: { url: string; token: string }) => SandboxdClient,
    private readonly config: AlpineConfig,
  ) {}

  async export(
    manifest: CheckpointManifest,
    opts: Parameters<CheckpointExporter["export"]>[1],
  ): Promise<WorkExport> {
    const spec = {
      sandbox_id: `${manifest.sandbox_id}_x${crypto.randomUUID().slice(0, 8)}`,
      name: "export",
      image: "export",
      config: this.config,
      // An export runs no agent: the short-lived runtime gets no model credentials.
      auth: {},
    };
    let handle: RuntimeHandle = await this.provider.create(spec);
    try {
      handle = await this.provider.start(handle, spec);
      const endpoint = await this.provider.endpoint(handle);
      if (!endpoint) throw new AlpineError("agent_start_failed", "the export runtime did not start");
      const client = this.connect(endpoint);
      for (const artifact of manifest.artifacts) {
        await client.putRestoreArtifact(
          artifact.name,
          await this.store.getArtifact(manifest.sandbox_id, manifest.checkpoint_id, artifact.name),
        );
      }
      await client.restore({ manifest, repo: opts.repo, branch: manifest.branch });
      const work = await client.export({
        branch: opts.branch,
        message: opts.message,
        author: opts.author,
        push: opts.push,
        credentials: opts.credentials,
      });
      if (opts.patch) return { ...work, patch: (await client.diff({ stat: false })).patch ?? "" };
      return work;
    } finally {
      await this.provider.destroy(handle).catch(() => {});
    }
  }
}

function json(value: unknown, status = 200): Response {
  return Response.json(value, { status, headers: { "cache-control": "no-store" } });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function htmlPage(status: number, title: string, text: string): Response {
  return new Response(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>alpine: ${escapeHtml(title)}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>
`,
    { status, headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } },
  );
}
