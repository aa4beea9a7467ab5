import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { AlpineError, toAlpineError } from "@alpine/core/errors";
import type { ReasonCode } from "@alpine/core/reasons";
import {
  AdoptRequestSchema,
  type CheckpointManifestData,
  CheckpointRequestSchema,
  type DeleteCheckpointResponse,
  ExportRequestSchema,
  type HealthResponse,
  type InitEvent,
  InitRequestSchema,
  LOGS_TAIL_MAX,
  LoginRequestSchema,
  type LoginResponse,
  type LogsResponse,
  RestoreRequestSchema,
  type ShutdownResponse,
  TaskRequestSchema,
  type TaskResponse,
} from "@alpine/core/sandboxd-api";
import type { z } from "zod";
import type { Auth } from "./auth.ts";
import type { IdleSuspend } from "./idle-suspend.ts";
import type { Logger } from "./log.ts";
import { listPreparedManifests, receivePreparedFile, sendPreparedFile } from "./prepared-transfer.ts";
import { connectAgentPort, PREVIEW_AUTH_PREFIX, previewPortOfRequest } from "./preview.ts";
import { proxyHttp, proxyUpgrade, type Upstream } from "./proxy.ts";
import type { Sandbox } from "./sandbox.ts";
import { writeCheckpoint } from "./sandbox-checkpoint.ts";
import { exportWork } from "./sandbox-export.ts";
import { planRestore, restoreSandbox, stageRestoreArtifact } from "./sandbox-restore.ts";
import { landingPage, sessionUsedBy } from "./ui-session.ts";

const HTTP_STATUS: Partial<Record<ReasonCode, number>> = {
  unauthorized: 401,
  usage_invalid: 400,
  name_invalid: 400,
  repo_resolution_failed: 400,
  branch_invalid: 400,
  ref_not_found: 404,
  sandbox_not_running: 409,
  agent_busy: 409,
  operation_in_progress: 409,
  sandbox_identity_conflict: 409,
  nothing_to_export: 409,
  push_rejected: 409,
  checkpoint_missing: 404,
  checkpoint_checksum_mismatch: 422,
  repo_unreachable: 502,
  task_failed: 502,
  sandbox_unavailable: 503,
  agent_start_failed: 503,
};

export function httpStatus(err: AlpineError): number {
  const own = (err as AlpineError & { httpStatus?: unknown }).httpStatus;
  if (typeof own === "number") return own;
  return HTTP_STATUS[err.reason] ?? (err.exitCode === 1 ? 400 : 500);
}

/** One path segment, percent-decoded ("" when it does not decode). */
function segment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    // Malformed percent-encoding: "" is no valid id or name, so the route answers 404.
    return "";
  }
}

const COOKIE_PREFIX = "alpine_session";
/** A preview's app gets none of alpine's cookies (its own session included). */
const PREVIEW_COOKIE_PREFIX = "alpine_";
const MAX_BODY = 4 * 1024 * 1024;

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

function sendError(res: ServerResponse, err: AlpineError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, httpStatus(err), err.toJSON());
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendHtml401(res: ServerResponse, name: string, why: string, port?: number): void {
  const command = `alpine open ${name}${port ? ` --port ${port}` : ""}`;
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>alpine: sign in</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto">
<h1>Not signed in</h1>
<p>${escapeHtml(why)}</p>
<p>Run <code>${escapeHtml(command)}</code> to get a fresh login link for this ${port ? "preview" : "sandbox"}.</p>
</body></html>
`;
  res.writeHead(401, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

async function readBody(req: IncomingMessage, limit = MAX_BODY): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AlpineError("usage_invalid", `request body is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function readJson<T>(req: IncomingMessage, schema: z.ZodType<T>): Promise<T> {
  const text = await readBody(req);
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
}

export interface ApiDeps {
  sandbox: Sandbox;
  auth: Auth;
  log: Logger;
  /** Called once the shutdown response went out. */
  onShutdown(): void;
  /** The checkpoint written on SIGTERM, held for the control plane to copy (config exit_checkpoint). */
  exitCheckpoint?: () => CheckpointManifestData | null;
  /** Scale-to-zero's watch: every request but a status read is use of the sandbox (idle-suspend.ts). */
  idle?: IdleSuspend;
}

/** The port this request came in on (sandboxd's own). */
function localPort(req: IncomingMessage): number | undefined {
  return req.socket.localPort;
}

export function createApi(deps: ApiDeps): Server {
  const { sandbox, auth, log } = deps;
  /** UI sessions whose browser got the landing page (ui-session.ts) already. */
  const landed = new Set<string>();

  // Not before ready: a UI request would make OpenCode open the workspace before the checkout exists.
  // A sandbox kept after a failed setup has its checkout: its UI is there for inspection.
  const uiOpen = () => sandbox.phase === "ready" || sandbox.keptForInspection;
  const upstream = (): Upstream | null => {
    if (!uiOpen() || !sandbox.opencode.ready || !sandbox.opencode.port) return null;
    sandbox.agent.noteClientRequest();
    return { port: sandbox.opencode.port, authorization: sandbox.opencode.authorization };
  };

  async function v1(req: IncomingMessage, res: ServerResponse, path: string, url: URL): Promise<void> {
    const method = req.method ?? "GET";
    const route = `${method} ${path}`;
    switch (route) {
      case "GET /v1/status": {
        const exit = deps.exitCheckpoint?.();
        return sendJson(res, 200, {
          ...(await sandbox.status()),
          ...(exit ? { exit_checkpoint: exit } : {}),
        });
      }
      case "POST /v1/init":
        return init(req, res);
      case "POST /v1/adopt": {
        const body = await readJson(req, AdoptRequestSchema);
        const adopted = await sandbox.adopt(body);
        if (body.idle_suspend) deps.idle?.configure(body.idle_suspend.after_ms);
        return sendJson(res, 200, adopted);
      }
      case "POST /v1/task": {
        const body = await readJson(req, TaskRequestSchema);
        sandbox.requireReady();
        const { session_id } = await sandbox.agent.runTask(body.prompt, body.session_id, {
          newSession: body.new_session === true,
          fallback: body.fallback_session_id,
          budget: body.budget,
        });
        return sendJson(res, 200, { session_id, accepted: true } satisfies TaskResponse);
      }
      case "GET /v1/diff": {
        sandbox.requireWorkspace();
        const stat = ["1", "true", "yes"].includes(url.searchParams.get("stat") ?? "");
        return sendJson(res, 200, await sandbox.views.diff(stat));
      }
      case "POST /v1/login": {
        const { port } = await readJson(req, LoginRequestSchema);
        if (port !== undefined) {
          // sandboxd's own port and OpenCode's are never previews (OpenCode's would skip its password).
          if (port === localPort(req) || port === sandbox.opencode.port || sandbox.agentPortsOwn().has(port))
            throw new AlpineError("usage_invalid", `port ${port} is the sandbox's own, not a preview`, {
              port,
            });
          const { code, expires_at } = auth.newLoginCode(Date.now(), `preview:${port}`);
          log.info("preview login code issued", { port, expires_at });
          return sendJson(res, 200, {
            code,
            expires_at,
            path: `${PREVIEW_AUTH_PREFIX}${code}`,
          } satisfies LoginResponse);
        }
        const { code, expires_at } = auth.newLoginCode();
        log.info("login code issued", { expires_at });
        return sendJson(res, 200, { code, expires_at, path: `/auth/${code}` } satisfies LoginResponse);
      }
      case "GET /v1/logs": {
        const tail = Number(url.searchParams.get("tail") ?? "200");
        if (!Number.isInteger(tail) || tail < 1 || tail > LOGS_TAIL_MAX) {
          throw new AlpineError("usage_invalid", `tail must be a whole number from 1 to ${LOGS_TAIL_MAX}`);
        }
        return sendJson(res, 200, { lines: log.tail(tail) } satisfies LogsResponse);
      }
      case "POST /v1/shutdown": {
        await readBody(req, 64 * 1024);
        res.on("finish", () => deps.onShutdown());
        return sendJson(res, 202, { ok: true } satisfies ShutdownResponse);
      }
      case "POST /v1/checkpoint": {
        const body = await readJson(req, CheckpointRequestSchema);
        return sendJson(res, 200, await writeCheckpoint(sandbox, body));
      }
      case "POST /v1/export": {
        const body = await readJson(req, ExportRequestSchema);
        return sendJson(res, 200, await exportWork(sandbox, body));
      }
      case "POST /v1/restore":
        return restore(req, res);
    }
    // /v1/checkpoints/:id[/artifacts/:name] and /v1/restore/artifacts/:name. The URL parser
    // already resolved "."/".." segments (also %2e%2e); a segment is decoded once and then
    // must be a valid id/name, so an encoded "/" or ".." never reaches a path.
    const parts = path.split("/");
    if (
      parts[2] === "checkpoints" &&
      (parts.length === 4 || (parts.length === 6 && parts[4] === "artifacts"))
    ) {
      const id = segment(parts[3]!);
      if (parts.length === 6) {
        if (method !== "GET" && method !== "HEAD")
          throw new AlpineError("usage_invalid", `method ${method} is not allowed on ${path}`);
        return artifact(req, res, id, segment(parts[5]!));
      }
      if (method !== "DELETE")
        throw new AlpineError("usage_invalid", `method ${method} is not allowed on ${path}`);
      req.resume();
      sandbox.checkpoints.delete(id);
      log.info("checkpoint deleted", { checkpoint_id: id });
      return sendJson(res, 200, { ok: true } satisfies DeleteCheckpointResponse);
    }
    if (parts.length === 5 && parts[2] === "restore" && parts[3] === "artifacts") {
      if (method !== "PUT")
        throw new AlpineError("usage_invalid", `method ${method} is not allowed on ${path}`);
      try {
        return sendJson(res, 200, await stageRestoreArtifact(sandbox, segment(parts[4]!), req));
      } catch (err) {
        // Refused before or while reading: do not read the rest of a large body.
        res.setHeader("connection", "close");
        throw err;
      }
    }
    // Prepared environments in and out of this runtime's store (Cloudflare's R2 cache; prepared-transfer.ts).
    if (parts[2] === "prepared" && (parts.length === 3 || parts.length === 5)) {
      if (parts.length === 3 && method === "GET")
        return sendJson(res, 200, { entries: listPreparedManifests(sandbox.config) });
      const [key, name] = [segment(parts[3] ?? ""), segment(parts[4] ?? "")];
      if (parts.length === 5 && method === "GET") return sendPreparedFile(sandbox.config, key, name, res);
      if (parts.length === 5 && method === "PUT")
        return sendJson(res, 200, await receivePreparedFile(sandbox.config, key, name, req, log));
      throw new AlpineError("usage_invalid", `method ${method} is not allowed on ${path}`);
    }
    const known = [
      "/v1/status",
      "/v1/init",
      "/v1/adopt",
      "/v1/task",
      "/v1/diff",
      "/v1/login",
      "/v1/logs",
      "/v1/shutdown",
      "/v1/checkpoint",
      "/v1/export",
      "/v1/restore",
    ];
    if (known.includes(path))
      throw new AlpineError("usage_invalid", `method ${method} is not allowed on ${path}`);
    throw Object.assign(new AlpineError("usage_invalid", `no such endpoint: ${method} ${path}`, { path }), {
      httpStatus: 404,
    });
  }

  async function init(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req, InitRequestSchema);
    // Validation and conflicts are plain HTTP errors; from here on the answer streams.
    const plan = await sandbox.plan(body);
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    res.flushHeaders();
    const emit = (ev: InitEvent) => {
      if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify(ev) + "\n");
    };
    if (plan === "ready") {
      emit({ type: "result", ok: true, status: await sandbox.status() });
      res.end();
      return;
    }
    const heartbeat = setInterval(() => emit({ type: "heartbeat" }), 10_000);
    try {
      // Runs to the end even if the client goes away.
      await sandbox.init(plan, emit);
    } finally {
      clearInterval(heartbeat);
      res.end();
    }
  }

  async function artifact(
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    name: string,
  ): Promise<void> {
    const path = sandbox.checkpoints.artifactPath(id, name);
    const fh = await open(path, "r");
    let size: number;
    try {
      size = (await fh.stat()).size;
    } catch (err) {
      await fh.close();
      throw err;
    }
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": size,
      "cache-control": "no-store",
    });
    if (req.method === "HEAD") {
      await fh.close();
      res.end();
      return;
    }
    // The client may go away mid-transfer: that only ends this response.
    await pipeline(createReadStream("", { fd: fh }), res).catch(() => res.destroy());
  }

  async function restore(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req, RestoreRequestSchema);
    // Input errors, conflicts and artifacts that do not match the manifest are plain HTTP errors.
    const plan = await planRestore(sandbox, body);
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    res.flushHeaders();
    const emit = (ev: InitEvent) => {
      if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify(ev) + "\n");
    };
    const heartbeat = setInterval(() => emit({ type: "heartbeat" }), 10_000);
    try {
      await restoreSandbox(sandbox, plan, emit);
    } finally {
      clearInterval(heartbeat);
      res.end();
    }
  }

  async function login(res: ServerResponse, path: string): Promise<void> {
    let code = "";
    try {
      code = decodeURIComponent(path.slice("/auth/".length));
    } catch {
      // Malformed percent-encoding: refused below like any unknown code.
      code = "";
    }
    const session = code ? auth.redeem(code) : undefined;
    if (!session) {
      log.warn("login code refused");
      sendHtml401(res, sandbox.config.name, "This login link is invalid, was already used or has expired.");
      return;
    }
    // Straight to this workspace's session in OpenCode's UI (its "/" lists nothing for a new browser).
    const location = await sandbox.uiPath().catch((err: unknown) => {
      log.warn("cannot find the UI page of the workspace; sending the browser to /", { error: String(err) });
      return "/";
    });
    log.info("login code redeemed", { location });
    res.writeHead(302, {
      location,
      "set-cookie": auth.setCookie(session),
      "cache-control": "no-store",
      "referrer-policy": "no-referrer",
      "content-length": 0,
    });
    res.end();
  }

  /** A preview's upstream: the agent's port, through the bridge when its network is its own. */
  const previewUpstream = (port: number): Upstream => ({
    port,
    // A start command's server listens on sandboxd's own loopback, the agent's behind the bridge.
    connect: () =>
      connectAgentPort(
        port,
        sandbox.servicePorts().includes(port) ? undefined : sandbox.opencode.namespaceDir,
      ),
  });

  function previewLogin(res: ServerResponse, path: string, port: number): void {
    let code = "";
    try {
      code = decodeURIComponent(path.slice(PREVIEW_AUTH_PREFIX.length));
    } catch {
      // Malformed percent-encoding: refused below like any unknown code.
      code = "";
    }
    const scope = `preview:${port}` as const;
    const session = code ? auth.redeem(code, Date.now(), scope) : undefined;
    if (!session) {
      log.warn("preview login code refused", { port });
      sendHtml401(
        res,
        sandbox.config.name,
        "This preview link is invalid, was already used or has expired.",
        port,
      );
      return;
    }
    log.info("preview login code redeemed", { port });
    res.writeHead(302, {
      location: "/",
      "set-cookie": auth.setCookie(session, scope),
      "cache-control": "no-store",
      "referrer-policy": "no-referrer",
      "content-length": 0,
    });
    res.end();
  }

  /** A request on a preview origin: its login path, else the app behind its session cookie. */
  function preview(req: IncomingMessage, res: ServerResponse, path: string, port: number): void {
    if (path.startsWith(PREVIEW_AUTH_PREFIX) && (req.method === "GET" || req.method === "HEAD")) {
      req.resume();
      previewLogin(res, path, port);
      return;
    }
    if (!auth.checkCookie(req.headers.cookie, Date.now(), `preview:${port}`)) {
      req.resume();
      sendHtml401(res, sandbox.config.name, `This is a preview of port ${port} of an alpine sandbox.`, port);
      return;
    }
    proxyHttp(req, res, previewUpstream(port), PREVIEW_COOKIE_PREFIX);
  }

  const server = createServer(async (req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://sandboxd");
    } catch {
      return sendError(res, new AlpineError("usage_invalid", "bad request URL"));
    }
    const path = url.pathname;
    // Reading the status (alpine status, list, the alarm) is not use: it never keeps a sandbox up.
    const reading = path === "/healthz" || (path === "/v1/status" && req.method === "GET");
    if (!reading && deps.idle) res.once("close", deps.idle.begin());
    try {
      // A preview origin is the app's whole: even /v1 and /healthz there are the app's paths.
      const port = previewPortOfRequest(req.headers, sandbox.config.name);
      if (port !== null) return preview(req, res, path, port);
      if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
        return sendJson(res, 200, { ok: true, phase: sandbox.phase } satisfies HealthResponse);
      }
      if (path === "/v1" || path.startsWith("/v1/")) {
        if (!auth.checkBearer(req.headers.authorization)) {
          req.resume();
          throw new AlpineError("unauthorized", "missing or wrong bearer token");
        }
        return await v1(req, res, path, url);
      }
      if (path.startsWith("/auth/") && (req.method === "GET" || req.method === "HEAD")) {
        return await login(res, path);
      }
      if (!auth.checkCookie(req.headers.cookie)) {
        req.resume();
        return sendHtml401(res, sandbox.config.name, "This is the OpenCode web UI of an alpine sandbox.");
      }
      // A browser's first page load after its login: add the workspace to OpenCode's home page first.
      const dest = req.headers["sec-fetch-dest"];
      if (req.method === "GET" && dest === "document" && uiOpen()) {
        const key = auth.sessionKey(req.headers.cookie);
        if (key && !landed.has(key)) {
          landed.add(key);
          if (landed.size > 1000) landed.delete(landed.values().next().value!);
          const nonce = randomBytes(16).toString("base64");
          const body = landingPage(sandbox.config.workspace_dir, nonce);
          res.writeHead(200, {
            "content-type": "text/html; charset=utf-8",
            "content-length": Buffer.byteLength(body),
            "cache-control": "no-store",
            "content-security-policy": `default-src 'none'; script-src 'nonce-${nonce}'`,
          });
          return res.end(body);
        }
      }
      const used = sessionUsedBy(
        req.method ?? "GET",
        path,
        req.headers["sec-fetch-dest"] as string | undefined,
      );
      if (used) sandbox.agent.noteSessionUsed(used);
      return proxyHttp(req, res, upstream(), COOKIE_PREFIX);
    } catch (err) {
      const e = toAlpineError(err);
      if (e.reason === "internal_error") log.error("request failed", { path, error: e.message });
      sendError(res, e);
    }
  });

  server.on("upgrade", (req, socket, head) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const port = previewPortOfRequest(req.headers, sandbox.config.name);
    if (port !== null) {
      if (!auth.checkCookie(req.headers.cookie, Date.now(), `preview:${port}`)) {
        socket.end("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      proxyUpgrade(req, socket, head, previewUpstream(port), PREVIEW_COOKIE_PREFIX);
      return;
    }
    if (
      path === "/v1" ||
      path.startsWith("/v1/") ||
      path.startsWith("/internal/") ||
      !auth.checkCookie(req.headers.cookie)
    ) {
      socket.end("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    // An open web UI socket is someone using the sandbox until it closes.
    if (deps.idle) socket.once("close", deps.idle.begin());
    proxyUpgrade(req, socket, head, upstream(), COOKIE_PREFIX);
  });

  // Event streams through the proxy live long; only idle keep-alive sockets are reaped.
  server.requestTimeout = 0;
  // Idle keep-alive sockets are closed by the client first: workerd's connection pool (the
  // control plane in `alpine cloud dev`) drops idle ones after 5 s, Node's default here is also
  // 5 s, and when both fire together a request goes out on a socket being closed ("network
  // connection lost").
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  return server;
}
