import {
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  request,
  type ServerResponse,
} from "node:http";
import type { Duplex } from "node:stream";
import { AlpineError } from "@alpine/core/errors";
import { PREVIEW_PORT_HEADER } from "@alpine/core/sandboxd-api";

/** Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "trailers",
  "transfer-encoding",
  "upgrade",
]);

export interface Upstream {
  port: number;
  /** Replaces the client's Authorization (OpenCode's password); absent: the client's passes (a preview). */
  authorization?: string;
  /** How to reach the port (a preview in a closed namespace goes through the bridge); default TCP to 127.0.0.1. */
  connect?: () => Duplex;
}

function connectionTokens(headers: IncomingHttpHeaders): Set<string> {
  const v = headers.connection;
  const list = Array.isArray(v) ? v.join(",") : (v ?? "");
  return new Set(
    list
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
}

/**
 * Request headers for OpenCode: hop-by-hop ones dropped, the client's
 * Authorization replaced by OpenCode's own, sandboxd's login cookies removed
 * (other cookies pass), X-Forwarded-* added.
 */
export function upstreamHeaders(
  req: IncomingMessage,
  up: Upstream,
  cookiePrefix: string,
  upgrade: boolean,
): OutgoingHttpHeaders {
  const drop = connectionTokens(req.headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || drop.has(name)) continue;
    if ((name === "authorization" && up.authorization !== undefined) || name === "cookie") continue;
    // The control plane's routing of a preview (preview.ts) is alpine's, not the app's.
    if (name === PREVIEW_PORT_HEADER) continue;
    out[name] = value;
  }
  const cookies = (req.headers.cookie ?? "")
    .split(";")
    .map((c) => c.trim())
    .filter((c) => c && !c.startsWith(cookiePrefix));
  if (cookies.length) out.cookie = cookies.join("; ");
  if (up.authorization !== undefined) out.authorization = up.authorization;
  const remote = req.socket.remoteAddress ?? "";
  const prior = req.headers["x-forwarded-for"];
  out["x-forwarded-for"] = prior ? `${prior}, ${remote}` : remote;
  out["x-forwarded-proto"] = (req.headers["x-forwarded-proto"] as string | undefined) ?? "http";
  if (req.headers.host) out["x-forwarded-host"] = req.headers.host;
  if (upgrade) {
    out.connection = "Upgrade";
    if (req.headers.upgrade) out.upgrade = req.headers.upgrade;
  }
  return out;
}

/**
 * The Set-Cookie lines of a proxied response a browser may keep: none named
 * like alpine's own cookies (`alpine_…`: sandboxd's session, the control
 * plane's routing cookie), and none with a `Domain` attribute (one that names
 * a parent domain would reach every sandbox's origin under it). Whatever runs
 * in a sandbox (OpenCode, or a page it serves) can then neither log this
 * browser into another sandbox nor replace a session.
 */
export function sandboxSetCookies(lines: readonly string[]): string[] {
  return lines.filter((line) => {
    const [pair = "", ...attrs] = line.split(";");
    const name = pair.split("=")[0]!.trim().toLowerCase();
    if (name.startsWith("alpine_")) return false;
    return !attrs.some((a) => a.trim().toLowerCase().startsWith("domain"));
  });
}

function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const drop = connectionTokens(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || drop.has(name)) continue;
    // The browser must never be asked for OpenCode's password.
    if (name === "www-authenticate") continue;
    if (name === "set-cookie") {
      const kept = sandboxSetCookies(Array.isArray(value) ? value : [String(value)]);
      if (kept.length) out[name] = kept;
      continue;
    }
    out[name] = value;
  }
  return out;
}

function sendError(res: ServerResponse, err: AlpineError, status: number): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(err.toJSON());
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** Forwards one HTTP request to OpenCode, streaming both bodies (SSE included) with backpressure. */
export function proxyHttp(
  req: IncomingMessage,
  res: ServerResponse,
  up: Upstream | null,
  cookiePrefix: string,
): void {
  if (!up) {
    sendError(
      res,
      new AlpineError(
        "sandbox_unavailable",
        "the sandbox's server is not running right now (starting or restarting)",
      ),
      503,
    );
    return;
  }
  const upReq = request({
    host: "127.0.0.1",
    port: up.port,
    method: req.method,
    path: req.url,
    headers: upstreamHeaders(req, up, cookiePrefix, false),
    ...(up.connect ? { createConnection: up.connect as () => import("node:net").Socket } : {}),
  });
  upReq.on("response", (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, responseHeaders(upRes.headers));
    // Event streams: get the headers out now, and do not let Nagle hold small events.
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    upRes.pipe(res);
    upRes.on("error", () => res.destroy());
  });
  upReq.on("error", (e) => {
    sendError(
      res,
      new AlpineError("sandbox_unavailable", `the sandbox's server did not answer: ${e.message}`),
      502,
    );
  });
  // Client went away: stop the upstream request (ends long-lived event streams).
  res.on("close", () => {
    if (!res.writableFinished) upReq.destroy();
  });
  req.pipe(upReq);
}

function rawResponseHead(statusCode: number, statusMessage: string, rawHeaders: string[]): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const [name, value] = [rawHeaders[i]!, rawHeaders[i + 1]!];
    if (name.toLowerCase() === "set-cookie" && !sandboxSetCookies([value]).length) continue;
    head += `${name}: ${value}\r\n`;
  }
  return head + "\r\n";
}

/** Forwards a WebSocket (or any Upgrade) request: OpenCode's 101, then bytes both ways. */
export function proxyUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  up: Upstream | null,
  cookiePrefix: string,
): void {
  socket.on("error", () => socket.destroy());
  if (!up) {
    socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    return;
  }
  const upReq = request({
    host: "127.0.0.1",
    port: up.port,
    method: req.method,
    path: req.url,
    headers: upstreamHeaders(req, up, cookiePrefix, true),
    ...(up.connect ? { createConnection: up.connect as () => import("node:net").Socket } : {}),
  });
  upReq.on("upgrade", (upRes, upSocket, upHead) => {
    upSocket.on("error", () => socket.destroy());
    socket.on("error", () => upSocket.destroy());
    upSocket.on("close", () => socket.destroy());
    socket.on("close", () => upSocket.destroy());
    socket.write(
      rawResponseHead(
        upRes.statusCode ?? 101,
        upRes.statusMessage ?? "Switching Protocols",
        upRes.rawHeaders,
      ),
    );
    if (upHead.length) socket.write(upHead);
    if (head.length) upSocket.write(head);
    upSocket.setNoDelay(true);
    upSocket.pipe(socket);
    socket.pipe(upSocket);
  });
  upReq.on("response", (upRes) => {
    // OpenCode refused the upgrade: relay its answer and close.
    const headers = upRes.rawHeaders.filter((_, i, a) => {
      const n = (i % 2 === 0 ? a[i] : a[i - 1])!.toLowerCase();
      return !HOP_BY_HOP.has(n) && n !== "www-authenticate";
    });
    socket.write(
      rawResponseHead(upRes.statusCode ?? 502, upRes.statusMessage ?? "", [
        ...headers,
        "Connection",
        "close",
      ]),
    );
    upRes.pipe(socket);
  });
  upReq.on("error", () => socket.destroy());
  upReq.end();
}
