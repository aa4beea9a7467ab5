import {
  type AlpineConfig,
  AlpineError,
  type CheckpointView,
  type ExportView,
  type LaunchView,
  type ListItemView,
  NDJSON,
  type Progress,
  RemoteEventSchema,
  type StatusView,
  type StoredEvent,
  silentProgress,
  type TeardownView,
} from "@alpine/core";
import type { DiffResult, LogsResult, SandboxService, TaskResult } from "../service.ts";

/**
 * The `cloudflare` provider of the CLI: an HTTP client of the control plane
 * (packages/worker). The orchestrator runs in the sandbox's Durable Object;
 * this side resolves what only the user's machine knows (git credentials,
 * git author, the config) and sends it with the one request that needs it.
 */

export interface ControlPlaneOptions {
  url: string;
  token: string;
  /** Per attempt for short calls (default 30 s). Long operations stream and use `idleTimeoutMs`. */
  timeoutMs?: number;
  /** A streamed operation fails when nothing (not even a heartbeat) arrived for this long (default 60 s). */
  idleTimeoutMs?: number;
  /** Attempts for retryable failures (default 4: 1 + 3 retries with 0.5 s, 1 s, 2 s backoff). */
  attempts?: number;
  fetch?: typeof fetch;
}

type Method = "GET" | "POST" | "PUT";

const NOT_CONNECTED = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

export class ControlPlaneClient {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly attempts: number;

  constructor(private readonly opts: ControlPlaneOptions) {
    this.base = opts.url.replace(/\/+$/, "");
    this.fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    this.attempts = Math.max(1, opts.attempts ?? 4);
  }

  /**
   * One request, retried with exponential backoff only when the failure is
   * retryable *and* the request did not reach the control plane or is
   * idempotent (GET) or the control plane said so (operation_in_progress is
   * not retried: the user asked for one operation, and it is busy with another).
   */
  async json<T>(method: Method, path: string, body?: unknown): Promise<T> {
    let lastError: AlpineError | null = null;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));
      let res: Response;
      try {
        res = await this.send(method, path, body, "application/json", AbortSignal.timeout(this.timeoutMs));
      } catch (err) {
        lastError = err as AlpineError;
        // Not connected at all: nothing happened on the other side, so a retry is safe.
        if (lastError.details.connected === false || method === "GET") continue;
        throw lastError;
      }
      if (res.ok) return (await res.json()) as T;
      const error = await this.errorFrom(res);
      lastError = error;
      const transient = res.status === 502 || res.status === 503 || res.status === 504;
      if (error.retryable && (method === "GET" || transient) && error.reason !== "operation_in_progress")
        continue;
      throw error;
    }
    throw lastError ?? new AlpineError("control_plane_error", "the control plane did not answer");
  }

  /**
   * A long operation (launch, task --wait, checkpoint, export, teardown):
   * NDJSON progress lines and heartbeats, then the result. Not retried once
   * sent (the operation may be under way); connection failures before that are.
   */
  async stream<T>(path: string, body: unknown, progress: Progress = silentProgress): Promise<T> {
    let res: Response | null = null;
    let lastError: AlpineError | null = null;
    for (let attempt = 0; attempt < this.attempts && !res; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));
      try {
        res = await this.send("POST", path, body, NDJSON, AbortSignal.timeout(this.timeoutMs));
      } catch (err) {
        lastError = err as AlpineError;
        if (lastError.details.connected !== false) throw lastError;
      }
    }
    if (!res) throw lastError!;
    if (!res.ok) throw await this.errorFrom(res);
    if (!res.body) throw new AlpineError("control_plane_error", `the control plane sent no body for ${path}`);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const readChunk = async () => {
      let timer: NodeJS.Timeout | undefined;
      try {
        return await Promise.race([
          reader.read(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () =>
                reject(
                  new AlpineError(
                    "control_plane_unreachable",
                    `the control plane went silent for ${this.idleTimeoutMs / 1000} s during ${path}; the operation may still be running (see \`alpine status\`)`,
                    { url: this.base, path },
                  ),
                ),
              this.idleTimeoutMs,
            );
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    };
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await readChunk();
        } catch (err) {
          if (err instanceof AlpineError) throw err;
          throw this.unreachable(err, true);
        }
        if (chunk.value) buffer += decoder.decode(chunk.value, { stream: true });
        let nl = buffer.indexOf("\n");
        while (nl >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          nl = buffer.indexOf("\n");
          if (!line) continue;
          const parsed = RemoteEventSchema.safeParse(JSON.parse(line));
          if (!parsed.success) continue; // unknown line types are for newer clients
          const ev = parsed.data;
          if (ev.type === "progress") progress.step(ev.step);
          else if (ev.type === "warning") progress.warn(ev.message);
          else if (ev.type === "result") {
            if (ev.ok) return ev.value as T;
            throw AlpineError.fromJSON(ev.error, "control_plane_error");
          }
        }
        if (chunk.done) break;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    throw new AlpineError(
      "control_plane_error",
      `the control plane closed ${path} without a result; see \`alpine status\``,
      { path },
    );
  }

  /** Starts a streamed operation and returns as soon as it reported its first step (launch --no-wait). */
  async startStream(path: string, body: unknown): Promise<void> {
    const res = await this.send("POST", path, body, NDJSON, AbortSignal.timeout(this.timeoutMs));
    if (!res.ok) throw await this.errorFrom(res);
    const reader = res.body?.getReader();
    if (!reader) return;
    const decoder = new TextDecoder();
    let text = "";
    try {
      while (!text.includes("\n")) {
        const { done, value } = await reader.read();
        if (value) text += decoder.decode(value, { stream: true });
        if (done) break;
      }
      const first = RemoteEventSchema.safeParse(JSON.parse(text.split("\n")[0] || "{}"));
      if (first.success && first.data.type === "result" && !first.data.ok) {
        throw AlpineError.fromJSON(first.data.error, "control_plane_error");
      }
    } finally {
      // The operation goes on in the Durable Object; only this client stops listening.
      reader.cancel().catch(() => {});
    }
  }

  private async send(
    method: Method,
    path: string,
    body: unknown,
    accept: string,
    signal: AbortSignal,
  ): Promise<Response> {
    try {
      return await this.fetchImpl(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.opts.token}`,
          accept,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      const code = (err as { cause?: { code?: string } })?.cause?.code ?? "";
      // Only a connection that was never made is known not to have reached the control plane.
      throw this.unreachable(err, !NOT_CONNECTED.has(code));
    }
  }

  private unreachable(err: unknown, connected: boolean): AlpineError {
    const e = err as Error & { cause?: { code?: string } };
    const timedOut = e?.name === "TimeoutError" || e?.name === "AbortError";
    return new AlpineError(
      "control_plane_unreachable",
      timedOut
        ? `the control plane at ${this.base} did not answer in time`
        : `cannot reach the control plane at ${this.base}: ${e?.cause?.code ?? e?.message ?? String(err)}`,
      { url: this.base, connected, timeout: timedOut },
      { cause: err },
    );
  }

  private async errorFrom(res: Response): Promise<AlpineError> {
    const text = await res.text().catch(() => "");
    try {
      const value = JSON.parse(text) as { reason_code?: unknown };
      if (value && typeof value === "object" && typeof value.reason_code === "string") {
        return AlpineError.fromJSON(value, "control_plane_error");
      }
    } catch {
      // not the error shape
    }
    return new AlpineError(
      "control_plane_error",
      `the control plane answered HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`,
      { status: res.status },
    );
  }
}

/** What a remote call needs from the user's machine; resolved lazily (credential helpers can be slow). */
export interface RemoteLocalSide {
  config: AlpineConfig;
  credentialsFor(repo: string): Promise<{ username: string; password: string } | null>;
  githubToken(): string | null;
  gitAuthor(): Promise<{ name: string; email: string }>;
}

const enc = encodeURIComponent;

/** Every command's operation against the control plane; outputs are the CLI's own JSON, unchanged. */
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
    input: {
      name: string;
      repo?: string;
      ref?: string;
      image_profile?: string;
      task?: string;
      force_recreate?: boolean;
    },
    progress: Progress,
    opts: { wait: boolean } = { wait: true },
  ): Promise<LaunchView> {
    const repo = input.repo ?? (await this.existingRepo(input.name));
    const credentials = repo ? await this.local.credentialsFor(repo) : null;
    const body = {
      repo: input.repo,
      ref: input.ref,
      image_profile: input.image_profile,
      task: input.task,
      force_recreate: input.force_recreate,
      config: this.config(),
      credentials,
    };
    const path = `/v1/sandboxes/${enc(input.name)}/launch`;
    if (opts.wait) return this.client.stream<LaunchView>(path, body, progress);
    await this.client.startStream(path, body);
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

  list(): Promise<ListItemView[]> {
    return this.client.json("GET", "/v1/sandboxes");
  }

  status(name: string): Promise<StatusView> {
    return this.client.json("GET", `/v1/sandboxes/${enc(name)}`);
  }

  task(name: string, prompt: string, opts: { wait: boolean }, progress: Progress): Promise<TaskResult> {
    return this.client.stream(
      `/v1/sandboxes/${enc(name)}/task`,
      { prompt, wait: opts.wait, config: this.config() },
      progress,
    );
  }

  diff(name: string, opts: { stat: boolean }): Promise<DiffResult> {
    return this.client.json("GET", `/v1/sandboxes/${enc(name)}/diff${opts.stat ? "?stat=1" : ""}`);
  }

  async login(name: string): Promise<{ web_url: string }> {
    return this.client.json("POST", `/v1/sandboxes/${enc(name)}/login`, {});
  }

  async export(
    name: string,
    input: { branch?: string; pr?: boolean; patch?: boolean; from_checkpoint?: boolean },
    progress: Progress,
  ): Promise<ExportView & { patch?: string }> {
    const status = await this.status(name);
    const push = !input.patch;
    return this.client.stream(
      `/v1/sandboxes/${enc(name)}/export`,
      {
        ...input,
        credentials: push ? await this.local.credentialsFor(status.identity.repo) : null,
        github_token: input.pr ? this.local.githubToken() : null,
        author: await this.local.gitAuthor(),
        config: this.config(),
      },
      progress,
    );
  }

  checkpoint(name: string, progress: Progress): Promise<CheckpointView> {
    return this.client.stream(`/v1/sandboxes/${enc(name)}/checkpoint`, { config: this.config() }, progress);
  }

  teardown(name: string, opts: { force: boolean }, progress: Progress): Promise<TeardownView> {
    return this.client.stream(
      `/v1/sandboxes/${enc(name)}/teardown`,
      { force: opts.force, config: this.config() },
      progress,
    );
  }

  logs(name: string, opts: { tail: number; afterSeq?: number }): Promise<LogsResult> {
    const q = new URLSearchParams({ tail: String(opts.tail) });
    if (opts.afterSeq) q.set("after_seq", String(opts.afterSeq));
    return this.client.json<{ name: string; events: StoredEvent[]; lines: string[] }>(
      "GET",
      `/v1/sandboxes/${enc(name)}/logs?${q}`,
    );
  }

  gc(opts: { dryRun: boolean }): Promise<{ torn_down: string[]; kept: { name: string; reason: string }[] }> {
    return this.client.json("POST", "/v1/gc", { dry_run: opts.dryRun, config: this.config() });
  }

  /** `alpine auth sync` against the control plane: the entries are stored sealed there. */
  syncAuth(entries: Record<string, unknown>): Promise<{ providers: string[]; held: string[] }> {
    return this.client.json("PUT", "/v1/auth", { entries });
  }
}

/** The control plane's address and token, or a clear error saying what is missing. */
export function controlPlaneFrom(
  config: AlpineConfig,
  env: NodeJS.ProcessEnv = process.env,
): ControlPlaneOptions {
  const url = config.sandbox.control_plane_url;
  if (!url) {
    throw new AlpineError(
      "config_invalid",
      "sandbox.provider is cloudflare but sandbox.control_plane_url is not set",
      {
        key: "sandbox.control_plane_url",
        allowed: "the URL of your control plane (alpine cloud deploy prints it)",
      },
    );
  }
  const token = env.ALPINE_CONTROL_PLANE_TOKEN;
  if (!token) {
    throw new AlpineError(
      "config_invalid",
      "the cloudflare provider needs ALPINE_CONTROL_PLANE_TOKEN in the environment",
      {
        key: "ALPINE_CONTROL_PLANE_TOKEN",
        allowed: "the token set on the control plane (alpine cloud deploy)",
      },
    );
  }
  return { url, token };
}
