import {
  AlpineError,
  httpStatusOf,
  NDJSON,
  type Progress,
  type RemoteEvent,
  toAlpineError,
} from "@alpine/core";

/** The error object of the CLI's contract, with its HTTP status. */
export function errorResponse(err: unknown): Response {
  const e = toAlpineError(err);
  const own = (e as AlpineError & { httpStatus?: unknown }).httpStatus;
  const status = typeof own === "number" ? own : httpStatusOf(e.reason, e.exitCode);
  return Response.json(e.toJSON(), { status, headers: { "cache-control": "no-store" } });
}

/**
 * Runs a long operation. With `Accept: application/x-ndjson` the answer
 * streams progress lines and heartbeats (so proxies and the CLI's idle
 * timeout do not cut a clone of several minutes), then the result; otherwise
 * it is one JSON document. The operation runs to its end even if the client
 * goes away (its lease and state changes must not be left half-done).
 */
export async function streamOperation(
  request: Request,
  run: (progress: Progress) => Promise<unknown>,
  keepAlive: (p: Promise<unknown>) => void,
): Promise<Response> {
  if (!(request.headers.get("accept") ?? "").includes(NDJSON)) {
    try {
      return Response.json(await run({ step() {}, warn() {} }), { headers: { "cache-control": "no-store" } });
    } catch (err) {
      return errorResponse(err);
    }
  }
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const encoder = new TextEncoder();
  let open = true;
  const emit = (ev: RemoteEvent) => {
    if (!open) return;
    writer.write(encoder.encode(`${JSON.stringify(ev)}\n`)).catch(() => {
      // The client went away: stop writing; the operation itself runs to its end (keepAlive).
      open = false;
    });
  };
  const heartbeat = setInterval(() => emit({ type: "heartbeat" }), 5_000);
  const done = (async () => {
    try {
      const value = await run({
        step: (step) => emit({ type: "progress", step }),
        warn: (message) => emit({ type: "warning", message }),
      });
      emit({ type: "result", ok: true, value });
    } catch (err) {
      emit({ type: "result", ok: false, error: toAlpineError(err).toJSON() });
    } finally {
      clearInterval(heartbeat);
      open = false;
      // Closing a stream whose reader already left rejects; there is no one to tell.
      await writer.close().catch(() => undefined);
    }
  })();
  keepAlive(done);
  return new Response(readable, {
    headers: { "content-type": NDJSON, "cache-control": "no-store", "x-content-type-options": "nosniff" },
  });
}

/**
 * The init of a request passed on to another hop (a Durable Object, sandboxd)
 * with `headers`: same method, body streamed through, redirects returned as they are.
 */
export function forwardedInit(request: Request, headers: Headers): RequestInit {
  const init: RequestInit & { duplex?: "half" } = {
    method: request.method,
    headers,
    body: request.method === "GET" || request.method === "HEAD" ? undefined : request.body,
    redirect: "manual",
  };
  // A streamed request body needs half duplex.
  if (init.body) init.duplex = "half";
  return init;
}

export { AlpineError };
