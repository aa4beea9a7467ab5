import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";

// Not `import { request } from "node:http"`: an ES import of node:http makes Node evaluate every
// export of it, among them the lazy getters (WebSocket, MessageEvent) that compile undici: ≈60 ms
// of CPU at every CLI start that talks to sandboxd (docs/performance.md). The CommonJS module
// object gives `request` alone.
const { request } = process.getBuiltinModule("node:http");

/**
 * `fetch` for sandboxd's API (SandboxdClient's `fetch` option) over node:http. Node's own fetch
 * (undici) costs 30-50 ms of CPU the first time a process uses it (compiling undici and its
 * WebAssembly HTTP parser): on the critical path of a launch that adopts a warm runtime, where
 * nothing else is waited for, and of a one-file checkpoint, whose artifacts are a few KB. This
 * covers what SandboxdClient sends: http:// URLs, a plain headers object, a string body or none,
 * an AbortSignal, or a request body streamed from a web ReadableStream (a restore's staged
 * artifacts: a resume then loads no undici while OpenCode boots beside it). Anything else (https,
 * Headers objects, other bodies) goes to the global fetch. The response has what SandboxdClient reads:
 * ok, status, headers.get, body (a web ReadableStream: Readable.toWeb keeps the socket's
 * backpressure, so a large artifact is not buffered), text() and json().
 */
export const nodeFetch: typeof fetch = (input, init) => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : null;
  const body = init?.body ?? undefined;
  const headers = init?.headers ?? {};
  const plainHeaders = Object.getPrototypeOf(headers) === Object.prototype;
  const simple = url?.startsWith("http://");
  const streamed = body instanceof ReadableStream;
  if (!url || !simple || (body !== undefined && typeof body !== "string" && !streamed) || !plainHeaders) {
    return fetch(input, init);
  }
  const signal = init?.signal ?? undefined;
  return new Promise<Response>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    // No connection pool: one short-lived connection per request to a local sandboxd.
    const req = request(url, {
      method: init?.method ?? "GET",
      headers: headers as Record<string, string>,
      agent: false,
    });
    let res: IncomingMessage | undefined;
    const onAbort = () => {
      // Like fetch: the request, or the body being read, fails with the signal's reason.
      req.destroy(signal?.reason);
      res?.destroy(signal?.reason);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => signal?.removeEventListener("abort", onAbort);
    req.on("error", (err) => {
      done();
      reject(err);
    });
    req.once("response", (response) => {
      res = response;
      // Errors reach whoever reads the body; one nobody reads must not crash the process.
      response.on("error", () => {});
      response.once("close", done);
      resolve(responseOf(response));
    });
    if (!streamed) {
      req.end(body);
      return;
    }
    // Backpressure from the socket reaches the stream's source (a file being read).
    const source = Readable.fromWeb(body as unknown as import("node:stream/web").ReadableStream<Uint8Array>);
    source.on("error", (err) => req.destroy(err));
    req.on("error", () => source.destroy());
    source.pipe(req);
  });
};

function responseOf(res: IncomingMessage): Response {
  const status = res.statusCode ?? 0;
  let stream: ReadableStream<Uint8Array> | undefined;
  const text = async (): Promise<string> => {
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  };
  const response = {
    ok: status >= 200 && status < 300,
    status,
    statusText: res.statusMessage ?? "",
    headers: {
      get(name: string): string | null {
        const value = res.headers[name.toLowerCase()];
        if (value === undefined) return null;
        return Array.isArray(value) ? value.join(", ") : String(value);
      },
    },
    get body(): ReadableStream<Uint8Array> {
      stream ??= Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>;
      return stream;
    },
    text,
    json: async (): Promise<unknown> => JSON.parse(await text()),
  };
  return response as unknown as Response;
}
