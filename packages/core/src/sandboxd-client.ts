import { AlpineError } from "./errors.ts";
import { errorFromResponse, ndjsonValues } from "./http-wire.ts";
import type { ReasonCode } from "./reasons.ts";
import {
  type AdoptRequest,
  type CheckpointManifestData,
  CheckpointManifestSchema,
  type CheckpointRequest,
  DeleteCheckpointResponseSchema,
  type DiffResponse,
  DiffResponseSchema,
  type ExportRequest,
  type ExportResponse,
  ExportResponseSchema,
  type HealthResponse,
  HealthResponseSchema,
  InitEventSchema,
  type InitRequest,
  type LoginRequest,
  type LoginResponse,
  LoginResponseSchema,
  LogsResponseSchema,
  type RestoreArtifactResponse,
  RestoreArtifactResponseSchema,
  type RestoreRequest,
  type SandboxdPhase,
  type SandboxdStatus,
  ShutdownResponseSchema,
  StatusResponseSchema,
  type TaskRequest,
  type TaskResponse,
  TaskResponseSchema,
} from "./sandboxd-api.ts";

/**
 * The client of sandboxd's HTTP API (the contract is sandboxd-api.ts). Runtime-agnostic:
 * only the global `fetch` and `AbortSignal`, so the CLI and a Durable Object share it.
 */
export interface SandboxdClientOptions {
  baseUrl: string;
  token: string;
  fetch?: typeof fetch;
  /** Per request (default 15 s). init uses `initTimeoutMs` instead. */
  timeoutMs?: number;
  /** Whole init/restore stream, clone included (default 30 min). */
  initTimeoutMs?: number;
  /** Checkpoint, export and artifact transfers, bodies included (default 30 min). */
  transferTimeoutMs?: number;
}

type Schema<T> = { safeParse(v: unknown): { success: true; data: T } | { success: false; error: unknown } };

function fallbackReason(status: number): ReasonCode {
  if (status === 401) return "unauthorized";
  if (status === 502 || status === 503 || status === 504) return "sandbox_unavailable";
  return "internal_error";
}

export class SandboxdClient {
  private readonly baseUrl: string;
  private readonly token: string;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private readonly initTimeoutMs: number;
  private readonly transferTimeoutMs: number;

  constructor(opts: SandboxdClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "");
    this.token = opts.token;
    this.fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.initTimeoutMs = opts.initTimeoutMs ?? 30 * 60_000;
    this.transferTimeoutMs = opts.transferTimeoutMs ?? 30 * 60_000;
  }

  /** GET /healthz (no auth). */
  health(): Promise<HealthResponse> {
    return this.json("GET", "/healthz", undefined, HealthResponseSchema, false);
  }

  status(): Promise<SandboxdStatus> {
    return this.json("GET", "/v1/status", undefined, StatusResponseSchema);
  }

  task(body: TaskRequest): Promise<TaskResponse> {
    return this.json("POST", "/v1/task", body, TaskResponseSchema);
  }

  diff(opts: { stat?: boolean } = {}): Promise<DiffResponse> {
    return this.json("GET", opts.stat ? "/v1/diff?stat=1" : "/v1/diff", undefined, DiffResponseSchema);
  }

  login(body: LoginRequest = {}): Promise<LoginResponse> {
    return this.json("POST", "/v1/login", body, LoginResponseSchema);
  }

  /** GET /v1/logs: the tail of sandboxd's log (JSON lines of sandboxd and OpenCode). */
  async logs(tail = 200): Promise<string[]> {
    const n = Math.max(1, Math.floor(tail));
    return (await this.json("GET", `/v1/logs?tail=${n}`, undefined, LogsResponseSchema)).lines;
  }

  async shutdown(): Promise<void> {
    await this.json("POST", "/v1/shutdown", {}, ShutdownResponseSchema);
  }

  /** POST /v1/adopt: gives a warm sandboxd its identity and model credentials (once). */
  adopt(body: AdoptRequest): Promise<SandboxdStatus> {
    return this.json("POST", "/v1/adopt", body, StatusResponseSchema);
  }

  /**
   * POST /v1/init: clones (or reuses) the workspace and starts OpenCode. Calls
   * onPhase for each progress line; resolves with the final status, or throws
   * the AlpineError sandboxd reported.
   */
  init(
    body: InitRequest,
    onPhase?: (phase: SandboxdPhase) => void,
    onOutput?: (line: string) => void,
  ): Promise<SandboxdStatus> {
    return this.phased("/v1/init", body, onPhase, onOutput);
  }

  /**
   * POST /v1/checkpoint: sandboxd writes a checkpoint of the live workspace and
   * OpenCode's sessions into its own dir; fetch its artifacts with
   * `checkpointArtifact`, then `deleteCheckpoint`.
   */
  checkpoint(body: CheckpointRequest): Promise<CheckpointManifestData> {
    return this.json("POST", "/v1/checkpoint", body, CheckpointManifestSchema, true, this.transferTimeoutMs);
  }

  /** GET /v1/checkpoints/:id/artifacts/:name as a byte stream. */
  async checkpointArtifact(checkpointId: string, name: string): Promise<ReadableStream<Uint8Array>> {
    const path = `/v1/checkpoints/${encodeURIComponent(checkpointId)}/artifacts/${encodeURIComponent(name)}`;
    const res = await this.request("GET", path, undefined, this.transferTimeoutMs);
    if (!res.ok) throw await this.errorFrom(res);
    if (!res.body) throw new AlpineError("sandbox_unavailable", `sandboxd sent no body for ${name}`);
    return res.body;
  }

  /** DELETE /v1/checkpoints/:id (idempotent). */
  async deleteCheckpoint(checkpointId: string): Promise<void> {
    await this.json(
      "DELETE",
      `/v1/checkpoints/${encodeURIComponent(checkpointId)}`,
      undefined,
      DeleteCheckpointResponseSchema,
    );
  }

  /** PUT /v1/restore/artifacts/:name: stages one artifact (streamed) before `restore`. */
  async putRestoreArtifact(name: string, body: ReadableStream<Uint8Array>): Promise<void> {
    await this.stageRestoreArtifact(name, body);
  }

  /** As putRestoreArtifact, returning the sha256 and size sandboxd received. */
  async stageRestoreArtifact(
    name: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<RestoreArtifactResponse> {
    const res = await this.request(
      "PUT",
      `/v1/restore/artifacts/${encodeURIComponent(name)}`,
      body,
      this.transferTimeoutMs,
    );
    return this.parse(res, "PUT", "/v1/restore/artifacts", RestoreArtifactResponseSchema);
  }

  // ---- prepared environments moved by the control plane (Cloudflare's R2 cache; docs/environments.md) ----

  /** GET /v1/prepared: the manifests of the preparations in this runtime's store. */
  async listPrepared(): Promise<unknown[]> {
    const res = await this.request("GET", "/v1/prepared", undefined, this.transferTimeoutMs);
    if (!res.ok) throw await this.errorFrom(res);
    return ((await res.json()) as { entries: unknown[] }).entries;
  }

  /** GET /v1/prepared/:key/:name as a byte stream. */
  async preparedFile(key: string, name: string): Promise<ReadableStream<Uint8Array>> {
    const path = `/v1/prepared/${encodeURIComponent(key)}/${encodeURIComponent(name)}`;
    const res = await this.request("GET", path, undefined, this.transferTimeoutMs);
    if (!res.ok) throw await this.errorFrom(res);
    if (!res.body) throw new AlpineError("sandbox_unavailable", `sandboxd sent no body for ${name}`);
    return res.body;
  }

  /** PUT /v1/prepared/:key/:name: stages one file; the manifest, sent last, puts the entry in place. */
  async putPreparedFile(
    key: string,
    name: string,
    body: ReadableStream<Uint8Array>,
  ): Promise<{ sha256: string; bytes: number }> {
    const path = `/v1/prepared/${encodeURIComponent(key)}/${encodeURIComponent(name)}`;
    const res = await this.request("PUT", path, body, this.transferTimeoutMs);
    if (!res.ok) throw await this.errorFrom(res);
    return (await res.json()) as { sha256: string; bytes: number };
  }

  /**
   * POST /v1/restore: rebuilds the workspace and OpenCode's sessions from the
   * staged artifacts (NDJSON progress like init). Throws
   * checkpoint_checksum_mismatch (details.artifact) when a staged artifact does
   * not match the manifest; nothing is restored then.
   */
  restore(
    body: RestoreRequest,
    onPhase?: (phase: SandboxdPhase) => void,
    onOutput?: (line: string) => void,
  ): Promise<SandboxdStatus> {
    return this.phased("/v1/restore", body, onPhase, onOutput);
  }

  /** POST /v1/export: commits all work onto the sandbox branch and (optionally) pushes it. */
  export(body: ExportRequest): Promise<ExportResponse> {
    return this.json("POST", "/v1/export", body, ExportResponseSchema, true, this.transferTimeoutMs);
  }

  /** A streamed NDJSON operation (init, restore): phase lines, heartbeats, one result. */
  private async phased(
    path: string,
    body: unknown,
    onPhase?: (phase: SandboxdPhase) => void,
    onOutput?: (line: string) => void,
  ): Promise<SandboxdStatus> {
    const res = await this.request("POST", path, body, this.initTimeoutMs);
    if (!res.ok) throw await this.errorFrom(res);
    if (!res.body) throw new AlpineError("sandbox_unavailable", `sandboxd sent an empty ${path} response`);
    const lines = ndjsonValues(res.body, {
      malformed: (line) =>
        new AlpineError("internal_error", `sandboxd sent a malformed ${path} line`, { line }),
      readFailed: (err) => this.unavailable(err),
    });
    for await (const value of lines) {
      const parsed = InitEventSchema.safeParse(value);
      if (!parsed.success) continue; // unknown line types are for newer clients
      const ev = parsed.data;
      if (ev.type === "phase") onPhase?.(ev.phase);
      if (ev.type === "output") onOutput?.(ev.line);
      if (ev.type === "result") {
        if (ev.ok) return ev.status;
        throw AlpineError.fromJSON(ev.error);
      }
    }
    throw new AlpineError("sandbox_unavailable", `sandboxd closed the ${path} stream without a result`);
  }

  private async json<T>(
    method: string,
    path: string,
    body: unknown,
    schema: Schema<T>,
    auth = true,
    timeoutMs = this.timeoutMs,
  ): Promise<T> {
    const res = await this.request(method, path, body, timeoutMs, auth);
    return this.parse(res, method, path, schema);
  }

  private async parse<T>(res: Response, method: string, path: string, schema: Schema<T>): Promise<T> {
    if (!res.ok) throw await this.errorFrom(res);
    let value: unknown;
    try {
      value = await res.json();
    } catch (err) {
      throw new AlpineError(
        "internal_error",
        `sandboxd sent invalid JSON for ${method} ${path}`,
        {},
        { cause: err },
      );
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw new AlpineError("internal_error", `sandboxd sent an unexpected response for ${method} ${path}`, {
        issues: String(parsed.error),
      });
    }
    return parsed.data;
  }

  private async request(
    method: string,
    path: string,
    body: unknown,
    timeoutMs: number,
    auth = true,
  ): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json, application/x-ndjson" };
    if (auth) headers.authorization = `Bearer ${this.token}`;
    const stream = body instanceof ReadableStream;
    if (body !== undefined)
      headers["content-type"] = stream ? "application/octet-stream" : "application/json";
    const init: RequestInit & { duplex?: "half" } = {
      method,
      headers,
      body: body === undefined ? undefined : stream ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    };
    // A streamed request body needs half duplex in Node's fetch (Workers ignore the key).
    if (stream) init.duplex = "half";
    try {
      return await this.fetchImpl(this.baseUrl + path, init);
    } catch (err) {
      throw this.unavailable(err, timeoutMs);
    }
  }

  private unavailable(err: unknown, timeoutMs?: number): AlpineError {
    const name = err instanceof Error ? err.name : "";
    const timedOut = name === "TimeoutError" || name === "AbortError";
    const message = err instanceof Error ? err.message : String(err);
    return new AlpineError(
      "sandbox_unavailable",
      timedOut
        ? `sandboxd at ${this.baseUrl} did not answer within ${Math.round((timeoutMs ?? 0) / 100) / 10} s`
        : `cannot reach sandboxd at ${this.baseUrl}: ${message}`,
      { url: this.baseUrl, timeout: timedOut, ...(timedOut ? { timeout_ms: timeoutMs ?? null } : {}) },
      { cause: err },
    );
  }

  private errorFrom(res: Response): Promise<AlpineError> {
    return errorFromResponse(res, {
      unknownReason: "internal_error",
      fallback: (status, text) =>
        new AlpineError(fallbackReason(status), `sandboxd answered HTTP ${status}`, {
          status,
          body: text.slice(0, 200),
        }),
    });
  }
}
