import { randomBytes } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { dirname, join, resolve, sep } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import {
  CHECKPOINT_ARTIFACTS,
  CHECKPOINT_ID_PATTERN,
  type CheckpointArtifactName,
  type CheckpointManifestData,
  type SandboxdConfig,
} from "@alpine/core/sandboxd-api";
import { type Hashed, hashFile, writeHashed } from "./files.ts";
import { safeShow } from "./git.ts";

/** Largest artifact a restore accepts. */
export const MAX_RESTORE_ARTIFACT_BYTES = 20 * 1024 ** 3;

export function isArtifactName(name: string): name is CheckpointArtifactName {
  return (CHECKPOINT_ARTIFACTS as readonly string[]).includes(name);
}

/** A name a restore stages: a checkpoint artifact, or `link.<checkpoint id>.bundle` of a chain link. */
export function isStageName(name: string): boolean {
  if (isArtifactName(name)) return true;
  const m = /^link\.(.+)\.bundle$/.exec(name);
  return m !== null && isCheckpointId(m[1]!);
}

export function isCheckpointId(id: string): boolean {
  return CHECKPOINT_ID_PATTERN.test(id) && !id.includes("..");
}

function isUnder(path: string, parent: string): boolean {
  return path === parent || path.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

/**
 * The checkpoint dir of a config: `checkpoint_dir`, default
 * `<dirname(workspace_dir)>/checkpoints`. It must be sandboxd's own: neither
 * inside nor around the workspace, home or tmp dir (the agent writes those; and
 * a checkpoint dir around them would let a checkpoint id name one of them).
 */
export function checkpointDirOf(config: SandboxdConfig): string {
  const dir = resolve(config.checkpoint_dir ?? join(dirname(resolve(config.workspace_dir)), "checkpoints"));
  for (const [key, value] of [
    ["workspace_dir", config.workspace_dir],
    ["home_dir", config.home_dir],
    ["tmp_dir", config.tmp_dir],
  ] as const) {
    const other = resolve(value);
    if (isUnder(dir, other) || isUnder(other, dir)) {
      throw new AlpineError(
        "config_invalid",
        `checkpoint_dir ${dir} must not be inside or around ${key} ${other}`,
        {
          checkpoint_dir: dir,
          [key]: other,
        },
      );
    }
  }
  return dir;
}

/**
 * sandboxd's checkpoint dir (mode 0700, not writable by the agent):
 *
 *   <id>/manifest.json, workspace.bundle, opencode-data.tar.gz   finished checkpoints
 *   .work-<rand>/                                               one running checkpoint or export
 *   .restore/<name>                                             artifacts staged for a restore
 *
 * Ids never start with "." so they cannot name the private entries.
 */
export class CheckpointDir {
  /** sha256/size of staged artifacts as received (the files are private, so this stays true). */
  private readonly staged = new Map<string, Hashed>();

  constructor(readonly root: string) {}

  private ensure(): void {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
  }

  /** A fresh private work dir; leftovers of an interrupted operation are removed first. */
  newWorkDir(): string {
    this.ensure();
    for (const entry of readdirSync(this.root)) {
      if (entry.startsWith(".work-")) rmSync(join(this.root, entry), { recursive: true, force: true });
    }
    const dir = join(this.root, `.work-${randomBytes(6).toString("hex")}`);
    mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /**
   * The private git dir checkpoints are snapshotted in. It is kept from one checkpoint to the next
   * (unlike a work dir) because its objects are the earlier checkpoints' commits, which the next
   * checkpoint's thin bundle names as prerequisites instead of storing them again.
   */
  get snapshotGitDir(): string {
    this.ensure();
    return join(this.root, ".snapshot-git");
  }

  /** Moves `<work>/out` (the artifacts) to `<id>/` with the manifest beside them, replacing an older one. */
  publish(work: string, manifest: CheckpointManifestData): void {
    const out = join(work, "out");
    writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n", { mode: 0o600 });
    const dest = join(this.root, manifest.checkpoint_id);
    rmSync(dest, { recursive: true, force: true });
    renameSync(out, dest);
  }

  /** Path of a finished checkpoint's artifact, or checkpoint_missing (unknown or invalid id/name). */
  artifactPath(id: string, name: string): string {
    const missing = () =>
      new AlpineError(
        "checkpoint_missing",
        `no artifact '${safeShow(name)}' in checkpoint '${safeShow(id)}'`,
        {
          checkpoint_id: safeShow(id),
          artifact: safeShow(name),
        },
      );
    if (!isCheckpointId(id) || !isArtifactName(name)) throw missing();
    const path = join(this.root, id, name);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st?.isFile()) throw missing();
    return path;
  }

  /** Removes a checkpoint (idempotent). */
  delete(id: string): void {
    if (!isCheckpointId(id)) {
      throw new AlpineError("checkpoint_missing", `invalid checkpoint id '${safeShow(id)}'`, {
        checkpoint_id: safeShow(id),
      });
    }
    rmSync(join(this.root, id), { recursive: true, force: true });
  }

  private get stagingDir(): string {
    return join(this.root, ".restore");
  }

  /** Streams a restore artifact into the staging dir, hashing it on the way; replaces an earlier one. */
  async stage(name: string, body: IncomingMessage): Promise<Hashed> {
    const declared = Number(body.headers["content-length"] ?? "NaN");
    if (declared > MAX_RESTORE_ARTIFACT_BYTES) throw tooLarge();
    mkdirSync(this.stagingDir, { recursive: true, mode: 0o700 });
    this.staged.delete(name);
    const part = join(this.stagingDir, `${name}.part`);
    const final = join(this.stagingDir, name);
    rmSync(part, { force: true });
    rmSync(final, { force: true });
    let hashed: Hashed;
    try {
      hashed = await writeHashed(body, part, MAX_RESTORE_ARTIFACT_BYTES);
    } catch (err) {
      if (err instanceof AlpineError && err.details.limit !== undefined) throw tooLarge();
      throw new AlpineError("usage_invalid", `the upload of ${name} was cut off: ${(err as Error).message}`, {
        artifact: name,
      });
    }
    renameSync(part, final);
    this.staged.set(name, hashed);
    return hashed;
  }

  /** A staged artifact's path and hash (hashed again from disk if this process did not receive it), or null. */
  async stagedArtifact(name: string): Promise<{ path: string; hashed: Hashed } | null> {
    const path = join(this.stagingDir, name);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st?.isFile()) return null;
    let hashed = this.staged.get(name);
    if (!hashed || hashed.bytes !== st.size) {
      hashed = await hashFile(path);
      this.staged.set(name, hashed);
    }
    return { path, hashed };
  }

  dropStaged(name: string): void {
    this.staged.delete(name);
    rmSync(join(this.stagingDir, name), { force: true });
  }

  clearStaging(): void {
    this.staged.clear();
    rmSync(this.stagingDir, { recursive: true, force: true });
  }
}

function tooLarge(): AlpineError {
  return Object.assign(
    new AlpineError(
      "usage_invalid",
      `a restore artifact may be at most ${MAX_RESTORE_ARTIFACT_BYTES} bytes`,
      {
        max_bytes: MAX_RESTORE_ARTIFACT_BYTES,
      },
    ),
    { httpStatus: 413 },
  );
}
