import { createHash, randomBytes } from "node:crypto";
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { AlpineError } from "@alpine/core/errors";
import type { SandboxdConfig } from "@alpine/core/sandboxd-api";
import type { Logger } from "./log.ts";

/**
 * Moving prepared environments between sandboxd's store dir and a store it
 * cannot reach itself (Cloudflare: R2 behind the control plane; docs/environments.md,
 * "Per provider"). The control plane lists the preparations this runtime saved
 * (`GET /v1/prepared`), reads their files (`GET /v1/prepared/:key/:name`) and,
 * before a launch's setup, stages one into the store
 * (`PUT /v1/prepared/:key/:name`, the manifest last: it moves the entry into
 * place). sandboxd checks the artifacts' sha256 against the manifest when it
 * restores, as for any preparation, so a damaged one only makes setup run.
 */

const KEY = /^[0-9a-f]{64}$/;
const NAMES = new Set(["manifest.json", "workspace.tar.gz", "home.tar.gz"]);
/** Larger than any preparation alpine should move over HTTP (the agent's node_modules fit many times). */
const MAX_ARTIFACT_BYTES = 4 * 1024 * 1024 * 1024;

function storeDir(config: SandboxdConfig): string {
  const dir = config.prepared?.dir;
  if (!dir) throw new AlpineError("usage_invalid", "this sandboxd keeps no prepared environments");
  return dir;
}

function check(key: string, name?: string): void {
  if (!KEY.test(key)) throw new AlpineError("usage_invalid", "not a prepared-environment key");
  if (name !== undefined && !NAMES.has(name))
    throw new AlpineError("usage_invalid", "not a prepared-environment file name");
}

/** The manifests of the store's finished entries. */
export function listPreparedManifests(config: SandboxdConfig): unknown[] {
  const dir = storeDir(config);
  if (!existsSync(dir)) return [];
  const out: unknown[] = [];
  for (const name of readdirSync(dir)) {
    if (!KEY.test(name)) continue;
    try {
      out.push(JSON.parse(readFileSync(join(dir, name, "manifest.json"), "utf8")));
    } catch {
      // Not finished (no manifest yet) or removed meanwhile: not listed.
    }
  }
  return out;
}

/** Streams one file of a finished entry. */
export async function sendPreparedFile(
  config: SandboxdConfig,
  key: string,
  name: string,
  res: ServerResponse,
): Promise<void> {
  check(key, name);
  const path = join(storeDir(config), key, name);
  if (!existsSync(path))
    throw Object.assign(new AlpineError("usage_invalid", `no prepared file ${key.slice(0, 12)}/${name}`), {
      httpStatus: 404,
    });
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": statSync(path).size,
    "cache-control": "no-store",
  });
  // The client may go away mid-transfer: that only ends this response.
  await pipeline(createReadStream(path), res).catch(() => res.destroy());
}

/**
 * Stages one file under `<dir>/.stage-<key>/`; the manifest, sent last, moves
 * the staged entry to `<dir>/<key>` (an entry already there is kept).
 */
export async function receivePreparedFile(
  config: SandboxdConfig,
  key: string,
  name: string,
  req: IncomingMessage,
  log: Logger,
): Promise<{ name: string; sha256: string; bytes: number }> {
  check(key, name);
  const dir = storeDir(config);
  const stage = join(dir, `.stage-${key}`);
  mkdirSync(stage, { recursive: true, mode: 0o700 });
  const tmp = join(stage, `.${name}.${randomBytes(4).toString("hex")}`);
  const hash = createHash("sha256");
  let bytes = 0;
  req.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    hash.update(chunk);
    if (bytes > MAX_ARTIFACT_BYTES) req.destroy(new Error("prepared file too large"));
  });
  try {
    await pipeline(req, createWriteStream(tmp, { mode: 0o600 }));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new AlpineError("usage_invalid", `staging ${name} failed: ${(err as Error).message}`);
  }
  renameSync(tmp, join(stage, name));
  if (name === "manifest.json") {
    const final = join(dir, key);
    if (existsSync(final)) rmSync(stage, { recursive: true, force: true });
    else renameSync(stage, final);
    log.info("prepared environment staged", { key });
  }
  return { name, sha256: hash.digest("hex"), bytes };
}
