import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, rmSync } from "node:fs";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AlpineError } from "@alpine/core/errors";
import type { CheckpointArtifact } from "@alpine/core/sandboxd-api";

/** A file's sha256 (hex) and size: what a checkpoint manifest records of each artifact. */
export type Hashed = Omit<CheckpointArtifact, "name">;

/** A pass-through that hashes and counts what flows; fails past `limit` bytes. */
export function hashingCounter(limit = Number.POSITIVE_INFINITY): Transform & { result(): Hashed } {
  const hash = createHash("sha256");
  let bytes = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > limit) {
        cb(new AlpineError("usage_invalid", `more than ${limit} bytes`, { limit }));
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  let digest: string | undefined;
  return Object.assign(t, {
    result: (): Hashed => {
      digest ??= hash.digest("hex");
      return { sha256: digest, bytes };
    },
  });
}

/**
 * Writes a stream to a new file (mode 0600; fails if it exists), computing
 * sha256 and size while writing. The file is removed when anything fails.
 */
export async function writeHashed(
  source: Readable | AsyncIterable<Buffer | Uint8Array>,
  file: string,
  limit?: number,
): Promise<Hashed> {
  const counter = hashingCounter(limit);
  try {
    await pipeline(source, counter, createWriteStream(file, { flags: "wx", mode: 0o600 }));
  } catch (err) {
    rmSync(file, { force: true });
    throw err;
  }
  return counter.result();
}

/** sha256 and size of a file, streamed. */
export async function hashFile(file: string): Promise<Hashed> {
  const counter = hashingCounter();
  await pipeline(createReadStream(file), counter, async (s: AsyncIterable<unknown>) => {
    for await (const _ of s) {
      // drain
    }
  });
  return counter.result();
}
