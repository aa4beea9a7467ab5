import { describe, expect, it } from "vitest";
import { AlpineError } from "../src/errors.ts";
import { errorFromResponse, isErrorJson, ndjsonValues } from "../src/http-wire.ts";

const enc = new TextEncoder();

/** A body that sends each chunk in turn, then ends (or stays open when `keepOpen`). */
function bodyOf(chunks: string[], opts: { keepOpen?: boolean; onCancel?: () => void } = {}) {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) {
        controller.enqueue(enc.encode(chunks[i++]!));
        return;
      }
      if (!opts.keepOpen) controller.close();
      return new Promise<void>(() => undefined); // never brings more
    },
    cancel() {
      opts.onCancel?.();
    },
  });
}

const readOpts = {
  malformed: (line: string) => new AlpineError("internal_error", `malformed: ${line}`, { line }),
  readFailed: (err: unknown) =>
    new AlpineError("control_plane_unreachable", `read failed: ${(err as Error).message}`),
};

async function collect(it: AsyncIterable<unknown>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const v of it) out.push(v);
  return out;
}

describe("ndjsonValues", () => {
  it("yields each JSON value in order, across chunk boundaries, skipping blank lines", async () => {
    const body = bodyOf(['{"a":1}\n{"b"', ':2}\n\n   \n[3,4]\n"x"', "\n"]);
    expect(await collect(ndjsonValues(body, readOpts))).toEqual([{ a: 1 }, { b: 2 }, [3, 4], "x"]);
  });

  it("counts a last line without its newline", async () => {
    expect(await collect(ndjsonValues(bodyOf(['{"a":1}\n{"done":true}']), readOpts))).toEqual([
      { a: 1 },
      { done: true },
    ]);
  });

  it("decodes a multi-byte character split across chunks", async () => {
    const bytes = enc.encode('{"s":"é"}\n');
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes.slice(0, 7));
        c.enqueue(bytes.slice(7));
        c.close();
      },
    });
    expect(await collect(ndjsonValues(body, readOpts))).toEqual([{ s: "é" }]);
  });

  it("yields nothing for an empty body", async () => {
    expect(await collect(ndjsonValues(bodyOf([]), readOpts))).toEqual([]);
  });

  it("throws the malformed error for a line that is not JSON, after the good lines", async () => {
    const seen: unknown[] = [];
    const run = async () => {
      for await (const v of ndjsonValues(bodyOf(['{"ok":1}\nnot json {\n{"never":1}\n']), readOpts)) {
        seen.push(v);
      }
    };
    await expect(run()).rejects.toMatchObject({ reason: "internal_error", message: "malformed: not json {" });
    expect(seen).toEqual([{ ok: 1 }]);
  });

  it("cuts a malformed line to 200 characters in the error", async () => {
    const long = `x${"y".repeat(500)}`;
    let caught: AlpineError | undefined;
    try {
      await collect(ndjsonValues(bodyOf([long]), readOpts));
    } catch (err) {
      caught = err as AlpineError;
    }
    expect(caught?.details.line).toBe(long.slice(0, 200));
  });

  it("turns a failed read into readFailed", async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(enc.encode('{"a":1}\n'));
      },
      pull(c) {
        c.error(new Error("socket hang up"));
      },
    });
    const seen: unknown[] = [];
    const run = async () => {
      for await (const v of ndjsonValues(body, readOpts)) seen.push(v);
    };
    await expect(run()).rejects.toMatchObject({
      reason: "control_plane_unreachable",
      message: "read failed: socket hang up",
    });
    expect(seen).toEqual([{ a: 1 }]);
  });

  it("fails with idle() when nothing arrives within idleTimeoutMs", async () => {
    const body = bodyOf(['{"a":1}\n'], { keepOpen: true });
    const seen: unknown[] = [];
    const run = async () => {
      for await (const v of ndjsonValues(body, {
        ...readOpts,
        idleTimeoutMs: 30,
        idle: () => new AlpineError("agent_busy", "idle"),
      })) {
        seen.push(v);
      }
    };
    await expect(run()).rejects.toMatchObject({ reason: "agent_busy", message: "idle" });
    expect(seen).toEqual([{ a: 1 }]);
  });

  it("falls back to readFailed when idle() is not given", async () => {
    const body = bodyOf([], { keepOpen: true });
    await expect(collect(ndjsonValues(body, { ...readOpts, idleTimeoutMs: 20 }))).rejects.toMatchObject({
      reason: "control_plane_unreachable",
      message: "read failed: no data for 20 ms",
    });
  });

  it("does not time out a stream that keeps bringing data within the idle timeout", async () => {
    const chunks = ['{"n":1}\n', '{"n":2}\n', '{"n":3}\n'];
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        await new Promise((r) => setTimeout(r, 10));
        if (i < chunks.length) c.enqueue(enc.encode(chunks[i++]!));
        else c.close();
      },
    });
    expect(await collect(ndjsonValues(body, { ...readOpts, idleTimeoutMs: 80 }))).toEqual([
      { n: 1 },
      { n: 2 },
      { n: 3 },
    ]);
  });

  it("cancels the body when the consumer stops early", async () => {
    let cancelled = false;
    const body = bodyOf(['{"n":1}\n{"n":2}\n'], {
      keepOpen: true,
      onCancel: () => {
        cancelled = true;
      },
    });
    for await (const v of ndjsonValues(body, readOpts)) {
      expect(v).toEqual({ n: 1 });
      break;
    }
    expect(cancelled).toBe(true);
  });
});

describe("isErrorJson", () => {
  it.each([
    [{ reason_code: "sandbox_not_found", error: "x" }, true],
    [{ reason_code: "whatever" }, true],
    [{ reason_code: 3 }, false],
    [{ error: "x" }, false],
    [null, false],
    [undefined, false],
    ["sandbox_not_found", false],
    [42, false],
  ])("%j → %s", (value, expected) => {
    expect(isErrorJson(value)).toBe(expected);
  });
});

describe("errorFromResponse", () => {
  const opts = {
    unknownReason: "internal_error" as const,
    fallback: (status: number, text: string) =>
      new AlpineError("control_plane_unreachable", `HTTP ${status}: ${text}`, { status }),
  };

  it("rebuilds alpine's error object, keeping reason, message and details", async () => {
    const body = new AlpineError("sandbox_not_found", "no sandbox 'x'", { name: "x" }).toJSON();
    const err = await errorFromResponse(new Response(JSON.stringify(body), { status: 404 }), opts);
    expect(err).toBeInstanceOf(AlpineError);
    expect(err.reason).toBe("sandbox_not_found");
    expect(err.message).toBe("no sandbox 'x'");
    expect(err.details).toEqual({ name: "x" });
  });

  it("maps an unknown reason code to unknownReason", async () => {
    const res = new Response(JSON.stringify({ reason_code: "from_the_future", error: "hm" }), {
      status: 500,
    });
    const err = await errorFromResponse(res, { ...opts, unknownReason: "control_plane_error" });
    expect(err.reason).toBe("control_plane_error");
    expect(err.message).toBe("hm");
  });

  it("uses the fallback for a body that is not JSON", async () => {
    const err = await errorFromResponse(new Response("Bad Gateway", { status: 502 }), opts);
    expect(err.reason).toBe("control_plane_unreachable");
    expect(err.message).toBe("HTTP 502: Bad Gateway");
    expect(err.details).toEqual({ status: 502 });
  });

  it("uses the fallback for JSON that is not an error object", async () => {
    const err = await errorFromResponse(new Response('{"message":"nope"}', { status: 400 }), opts);
    expect(err.message).toBe('HTTP 400: {"message":"nope"}');
  });

  it("uses the fallback with an empty text when the body cannot be read", async () => {
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        c.error(new Error("reset"));
      },
    });
    const err = await errorFromResponse(new Response(body, { status: 503 }), opts);
    expect(err.message).toBe("HTTP 503: ");
  });
});
