import {
  AlpineError,
  CONTROL_PLANE_ROUTES,
  errorFromResponse,
  NDJSON,
  type NdjsonReadOptions,
  ndjsonValues,
  type Progress,
  RemoteEventSchema,
  type RouteName,
  type RouteRequest,
  type RouteResponse,
  routePath,
  silentProgress,
} from "@alpine/core";

/**
 * The CLI's HTTP client of the Cloudflare control plane (packages/worker).
 * `call` builds a request from the route table (core's control-plane-routes.ts);
 * `json` and `stream` are the transport with its retry and timeout rules.
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

const backoff = (attempt: number) => new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));

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
   * One route of the table: its method and path, the request as JSON body or
   * query, streamed with progress when the route streams.
   */
  async call<K extends RouteName>(
    name: K,
    request: RouteRequest<K>,
    opts: { sandbox?: string; progress?: Progress } = {},
  ): Promise<RouteResponse<K>> {
    const route = CONTROL_PLANE_ROUTES[name];
    let path = routePath(name, opts.sandbox);
    if (route.method === "GET") {
      const query = new URLSearchParams();
      for (const [key, value] of Object.entries(request as Record<string, unknown>)) {
        if (value !== undefined && value !== null) query.set(key, String(value));
      }
      if (query.size > 0) path += `?${query}`;
      return this.json(route.method, path);
    }
    if (!route.streamed) return this.json(route.method, path, request);
    return this.stream(path, request, opts.progress);
  }

  /** Starts a streamed route's operation and returns once it reported its first line (launch --no-wait). */
  async start<K extends RouteName>(name: K, request: RouteRequest<K>, opts: { sandbox?: string } = {}) {
    if (!CONTROL_PLANE_ROUTES[name].streamed) throw new Error(`route ${name} does not stream`);
    await this.startStream(routePath(name, opts.sandbox), request);
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
      if (attempt > 0) await backoff(attempt);
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
    const res = await this.openStream(path, body);
    const lines = ndjsonValues(res.body!, this.readOptions(path, true));
    for await (const line of lines) {
      const parsed = RemoteEventSchema.safeParse(line);
      if (!parsed.success) continue; // unknown line types are for newer clients
      const ev = parsed.data;
      if (ev.type === "progress") progress.step(ev.step);
      else if (ev.type === "warning") progress.warn(ev.message);
      else if (ev.type === "result") {
        if (ev.ok) return ev.value as T;
        throw AlpineError.fromJSON(ev.error, "control_plane_error");
      }
    }
    throw new AlpineError(
      "control_plane_error",
      `the control plane closed ${path} without a result; see \`alpine status\``,
      { path },
    );
  }

  /**
   * Starts a streamed operation and returns as soon as it sent its first line
   * (launch --no-wait). Leaving the loop cancels the body: the operation goes
   * on in the Durable Object, only this client stops listening.
   */
  async startStream(path: string, body: unknown): Promise<void> {
    const res = await this.openStream(path, body, 1);
    for await (const line of ndjsonValues(res.body!, this.readOptions(path, false))) {
      const first = RemoteEventSchema.safeParse(line);
      if (first.success && first.data.type === "result" && !first.data.ok) {
        throw AlpineError.fromJSON(first.data.error, "control_plane_error");
      }
      return;
    }
  }

  /** Sends a streamed request, retrying only connections that were never made. */
  private async openStream(path: string, body: unknown, attempts = this.attempts): Promise<Response> {
    let lastError: AlpineError | null = null;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await backoff(attempt);
      let res: Response;
      // The per-attempt timeout covers the answer's headers only: the body streams for as long
      // as the operation runs, watched by the idle timeout (a heartbeat every few seconds).
      const headers = new AbortController();
      const timer = setTimeout(
        () => headers.abort(new DOMException("no answer in time", "TimeoutError")),
        this.timeoutMs,
      );
      try {
        res = await this.send("POST", path, body, NDJSON, headers.signal);
      } catch (err) {
        lastError = err as AlpineError;
        if (lastError.details.connected !== false) throw lastError;
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (!res.ok) throw await this.errorFrom(res);
      if (!res.body)
        throw new AlpineError("control_plane_error", `the control plane sent no body for ${path}`);
      return res;
    }
    throw lastError ?? new AlpineError("control_plane_error", "the control plane did not answer");
  }

  private readOptions(path: string, idle: boolean): NdjsonReadOptions {
    return {
      malformed: (line) =>
        new AlpineError("control_plane_error", `the control plane sent a malformed line for ${path}`, {
          path,
          line,
        }),
      readFailed: (err) => this.unreachable(err, true),
      ...(idle
        ? {
            idleTimeoutMs: this.idleTimeoutMs,
            idle: () =>
              new AlpineError(
                "control_plane_unreachable",
                `the control plane went silent for ${this.idleTimeoutMs / 1000} s during ${path}; the operation may still be running (see \`alpine status\`)`,
                { url: this.base, path },
              ),
          }
        : {}),
    };
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

  private errorFrom(res: Response): Promise<AlpineError> {
    return errorFromResponse(res, {
      unknownReason: "control_plane_error",
      fallback: (status, text) =>
        new AlpineError(
          "control_plane_error",
          `the control plane answered HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ""}`,
          { status },
        ),
    });
  }
}
