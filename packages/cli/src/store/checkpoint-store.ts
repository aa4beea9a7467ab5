import { createHash } from "node:crypto";
import {
  closeSync,
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { CheckpointManifest, CheckpointStore } from "@alpine/core";
import { AlpineError } from "@alpine/core/errors";
import { execa } from "execa";
import { checkpointObjectPath } from "./checkpoint-paths.ts";

const SAFE_ID = /^[A-Za-z0-9_.-]{1,100}$/;

function checkId(kind: string, value: string): string {
  if (!SAFE_ID.test(value) || value === "." || value === "..") {
    throw new AlpineError("checkpoint_missing", `invalid ${kind} '${value.slice(0, 100)}'`, {
      [kind]: value.slice(0, 100),
    });
  }
  return value;
}

/**
 * Checkpoints on the local disk: $ALPINE_HOME/checkpoints/<sandbox-id>/ holds
 * one directory per checkpoint (its manifest) and an objects/ directory of
 * artifacts named by their sha256, so identical artifacts are stored once.
 */
export class LocalCheckpointStore implements CheckpointStore {
  constructor(private readonly root: string) {}

  private sandboxDir(sandboxId: string) {
    return join(this.root, checkId("sandbox_id", sandboxId));
  }

  private objectPath(sandboxId: string, sha256: string) {
    if (!/^[0-9a-f]{64}$/.test(sha256))
      throw new AlpineError("checkpoint_checksum_mismatch", `bad sha256 '${sha256}'`);
    return checkpointObjectPath(this.root, checkId("sandbox_id", sandboxId), sha256);
  }

  async putArtifact(sandboxId: string, checkpointId: string, name: string, body: ReadableStream<Uint8Array>) {
    checkId("checkpoint_id", checkpointId);
    checkId("artifact", name);
    const objects = join(this.sandboxDir(sandboxId), "objects");
    mkdirSync(objects, { recursive: true, mode: 0o700 });
    const tmp = join(objects, `.incoming-${checkpointId}-${name}-${process.pid}`);
    const hash = createHash("sha256");
    let bytes = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        bytes += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline(
        Readable.fromWeb(body as unknown as import("node:stream/web").ReadableStream),
        count,
        createWriteStream(tmp, { mode: 0o600 }),
      );
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new AlpineError(
        "checkpoint_failed",
        `could not store checkpoint artifact ${name}: ${(err as Error).message}`,
        {
          artifact: name,
        },
      );
    }
    const sha256 = hash.digest("hex");
    renameSync(tmp, this.objectPath(sandboxId, sha256));
    return { sha256, bytes };
  }

  async putManifest(manifest: CheckpointManifest): Promise<void> {
    const dir = join(this.sandboxDir(manifest.sandbox_id), checkId("checkpoint_id", manifest.checkpoint_id));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = join(dir, `manifest.json.${process.pid}.tmp`);
    writeFileSync(tmp, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, join(dir, "manifest.json"));
  }

  async getManifest(sandboxId: string, checkpointId: string): Promise<CheckpointManifest | null> {
    const path = join(this.sandboxDir(sandboxId), checkId("checkpoint_id", checkpointId), "manifest.json");
    if (!existsSync(path)) return null;
    return JSON.parse(readFileSync(path, "utf8")) as CheckpointManifest;
  }

  private artifactEntry(manifest: CheckpointManifest, name: string) {
    const entry = manifest.artifacts.find((a) => a.name === name);
    if (!entry) {
      throw new AlpineError(
        "checkpoint_missing",
        `checkpoint ${manifest.checkpoint_id} has no artifact '${name}'`,
        {
          artifact: name,
        },
      );
    }
    return entry;
  }

  /** Path of an artifact's bytes on disk (for git commands that need a file). */
  async artifactPath(sandboxId: string, checkpointId: string, name: string): Promise<string> {
    const manifest = await this.getManifest(sandboxId, checkpointId);
    if (!manifest) throw new AlpineError("checkpoint_missing", `checkpoint ${checkpointId} not found`, {});
    return this.objectPath(sandboxId, this.artifactEntry(manifest, name).sha256);
  }

  async getArtifact(
    sandboxId: string,
    checkpointId: string,
    name: string,
  ): Promise<ReadableStream<Uint8Array>> {
    const path = await this.artifactPath(sandboxId, checkpointId, name);
    return Readable.toWeb(createReadStream(path)) as unknown as ReadableStream<Uint8Array>;
  }

  async verify(manifest: CheckpointManifest): Promise<void> {
    for (const artifact of manifest.artifacts) {
      const path = this.objectPath(manifest.sandbox_id, artifact.sha256);
      const fail = (why: string) =>
        new AlpineError(
          "checkpoint_checksum_mismatch",
          `checkpoint ${manifest.checkpoint_id}: artifact ${artifact.name} ${why}`,
          { checkpoint_id: manifest.checkpoint_id, artifact: artifact.name },
        );
      if (!existsSync(path)) throw fail("is missing");
      if (statSync(path).size !== artifact.bytes)
        throw fail(`has ${statSync(path).size} bytes, expected ${artifact.bytes}`);
      const hash = createHash("sha256");
      await pipeline(createReadStream(path), hash);
      const actual = hash.digest("hex");
      if (actual !== artifact.sha256) throw fail(`has sha256 ${actual}, expected ${artifact.sha256}`);
      if (artifact.name.endsWith(".bundle") && manifest.depends_on) {
        // A thin bundle's prerequisites are in other checkpoints or upstream, not here: its
        // header is read (the bytes are covered by the sha256 above, and git checks the
        // prerequisites when a restore fetches the chain). No git process: this runs for every
        // link of a chain at every checkpoint.
        const why = thinBundleHeaderProblem(path, manifest);
        if (why) throw fail(why);
      } else if (artifact.name.endsWith(".bundle")) {
        // Beside the sandbox's own checkpoints, so prune() can clear one a killed process left.
        const scratch = mkdtempSync(join(this.sandboxDir(manifest.sandbox_id), ".verify-"));
        try {
          await execa("git", ["init", "--quiet", "--bare", scratch]);
          const r = await execa("git", ["-C", scratch, "bundle", "verify", "--quiet", path], {
            reject: false,
          });
          if (r.exitCode !== 0) throw fail(`is not a valid git bundle (${r.stderr.trim().split("\n")[0]})`);
        } finally {
          rmSync(scratch, { recursive: true, force: true });
        }
      }
    }
  }

  async list(sandboxId: string): Promise<string[]> {
    const dir = this.sandboxDir(sandboxId);
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((d) => d !== "objects" && !d.startsWith(".") && existsSync(join(dir, d, "manifest.json")))
      .map((d) => ({
        d,
        at: (JSON.parse(readFileSync(join(dir, d, "manifest.json"), "utf8")) as CheckpointManifest)
          .created_at,
      }))
      .sort((a, b) => a.at.localeCompare(b.at) || a.d.localeCompare(b.d))
      .map((x) => x.d);
  }

  /** Removes a checkpoint's manifest and every object no remaining checkpoint refers to. */
  async delete(sandboxId: string, checkpointId: string): Promise<void> {
    const dir = this.sandboxDir(sandboxId);
    rmSync(join(dir, checkId("checkpoint_id", checkpointId)), { recursive: true, force: true });
    await this.collectGarbage(sandboxId);
  }

  /**
   * What a killed writer left (the caller holds the sandbox's lease, so nothing writes now):
   * checkpoint dirs without a manifest, verify scratch dirs, partial and unreferenced objects.
   */
  async prune(sandboxId: string): Promise<void> {
    const dir = this.sandboxDir(sandboxId);
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir)) {
      if (entry === "objects") continue;
      if (entry.startsWith(".") || !existsSync(join(dir, entry, "manifest.json"))) {
        rmSync(join(dir, entry), { recursive: true, force: true });
      }
    }
    await this.collectGarbage(sandboxId);
  }

  private async collectGarbage(sandboxId: string): Promise<void> {
    const dir = this.sandboxDir(sandboxId);
    const keep = new Set<string>();
    for (const id of await this.list(sandboxId)) {
      for (const a of (await this.getManifest(sandboxId, id))?.artifacts ?? []) keep.add(a.sha256);
    }
    const objects = join(dir, "objects");
    if (!existsSync(objects)) return;
    for (const name of readdirSync(objects))
      if (!keep.has(name)) rmSync(join(objects, name), { force: true });
  }
}

/** What is wrong with a thin bundle's header (git's v2/v3 format), or null: it must hold the checkpoint commit. */
function thinBundleHeaderProblem(path: string, manifest: CheckpointManifest): string | null {
  const fd = openSync(path, "r");
  let text: string;
  try {
    const buf = Buffer.alloc(256 * 1024);
    text = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString("latin1");
  } finally {
    closeSync(fd);
  }
  const end = text.indexOf("\n\n");
  if (!/^# v[23] git bundle\n/.test(text) || end < 0) return "is not a git bundle (bad header)";
  const heads = text
    .slice(0, end)
    .split("\n")
    .slice(1)
    .filter((l) => !l.startsWith("-") && !l.startsWith("@"))
    .map((l) => l.split(" ")[0]);
  if (!heads.includes(manifest.checkpoint_commit))
    return `does not hold the checkpoint commit ${manifest.checkpoint_commit}`;
  if (text.slice(end + 2, end + 6) !== "PACK") return "has no pack after its header";
  return null;
}
