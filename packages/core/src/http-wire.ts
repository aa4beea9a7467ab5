import { AlpineError } from "./errors.ts";
import type { ReasonCode } from "./reasons.ts";

/**
 * What alpine's two HTTP clients (the CLI's control-plane client and the
 * orchestrator's sandboxd client) share on the wire: NDJSON bodies (progress
 * lines, heartbeats, one result) and errors sent as alpine's error object.
 * Runtime-agnostic: only web streams and `Response` are used.
 */

export interface NdjsonReadOptions {
  /** The error for a line that is not JSON. */
  malformed(line: string): AlpineError;
  /** The error for a read that failed (the connection was lost). */
  readFailed(err: unknown): AlpineError;
  /** When set, a read that brings nothing (not even a heartbeat) for this long fails with `idle()`. */
  idleTimeoutMs?: number;
  idle?(): AlpineError;
}

/**
 * Yields each JSON value of an NDJSON body, in order; blank lines are skipped
 * and a last line without its newline still counts. Stopping early (a
 * `return` or `break` in the consumer) cancels the body.
 */
export async function* ndjsonValues(
  body: ReadableStream<Uint8Array>,
  opts: NdjsonReadOptions,
): AsyncGenerator<unknown, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const parse = (raw: string): { value: unknown } | null => {
    const line = raw.trim();
    if (!line) return null;
    try {
      return { value: JSON.parse(line) };
    } catch {
      throw opts.malformed(line.slice(0, 200));
    }
  };
  try {
    for (;;) {
      const chunk = await readWithin(reader, opts);
      if (chunk.value) buffer += decoder.decode(chunk.value, { stream: true });
      let nl = buffer.indexOf("\n");
      while (nl >= 0) {
        const parsed = parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (parsed) yield parsed.value;
        nl = buffer.indexOf("\n");
      }
      if (chunk.done) break;
    }
    const last = parse(buffer);
    if (last) yield last.value;
  } finally {
    // Cancelling a body that already ended or failed rejects; this reader is done with it either way.
    reader.cancel().catch(() => undefined);
  }
}

async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  opts: NdjsonReadOptions,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const read = reader.read().catch((err: unknown) => {
      throw opts.readFailed(err);
    });
    if (!opts.idleTimeoutMs) return await read;
    const idleMs = opts.idleTimeoutMs;
    return await Promise.race([
      read,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(opts.idle?.() ?? opts.readFailed(new Error(`no data for ${idleMs} ms`))),
          idleMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether a value has the shape of alpine's error object (enough of it to rebuild the error). */
export function isErrorJson(value: unknown): boolean {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { reason_code?: unknown }).reason_code === "string"
  );
}

/**
 * The AlpineError a failed HTTP answer carries: its own error object when the
 * body is one (reason, message and details kept; an unknown reason becomes
 * `unknownReason`), else what `fallback` makes of the status and body text.
 */
export async function errorFromResponse(
  res: Response,
  opts: { unknownReason: ReasonCode; fallback(status: number, text: string): AlpineError },
): Promise<AlpineError> {
  // A body that cannot be read leaves the status as the only evidence, which the fallback reports.
  const text = await res.text().catch(() => "");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined; // not JSON: the fallback describes the answer
  }
  if (isErrorJson(value)) return AlpineError.fromJSON(value, opts.unknownReason);
  return opts.fallback(res.status, text);
}
