import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { AlpineError, toAlpineError } from "@alpine/core/errors";
import type { CheckpointManifestData, CheckpointRequest } from "@alpine/core/sandboxd-api";
import type { GitCredentials } from "./credentials.ts";
import { resolveRepo } from "./git.ts";
import { packOpencodeData } from "./opencode-data.ts";
import type { Sandbox } from "./sandbox.ts";
import { snapshotWorkspace, type UpstreamSource } from "./workspace-snapshot.ts";

/** The repo's remote a checkpoint may build on; none when its URL does not resolve (a removed local repo). */
function upstreamOf(repo: string, credentials: GitCredentials | undefined): UpstreamSource | undefined {
  try {
    return { repo: resolveRepo(repo), credentials };
  } catch {
    // Not reachable as a repo any more: the checkpoint is self-contained as far as upstream goes.
    return undefined;
  }
}

/** Tree of the last checkpoint this process wrote: work with that tree is saved. */
const savedTrees = new WeakMap<Sandbox, string>();

/**
 * POST /v1/checkpoint: writes checkpoint `checkpoint_id` into the checkpoint
 * dir: the git bundle (branch + a commit of the whole working tree) and
 * OpenCode's data. A snapshot: allowed while the agent works.
 */
export async function writeCheckpoint(sb: Sandbox, req: CheckpointRequest): Promise<CheckpointManifestData> {
  sb.requireWorkspace();
  if (req.credentials && /[\n\0]/.test(req.credentials.username + req.credentials.password)) {
    throw new AlpineError("usage_invalid", "credentials must not contain newlines or NUL characters");
  }
  sb.log.addSecret(req.credentials?.password);
  const end = sb.reserve("checkpoint");
  const t0 = Date.now();
  let packedAt: number | undefined;
  let work: string | null = null;
  try {
    work = sb.checkpoints.newWorkDir();
    const out = join(work, "out");
    mkdirSync(out, { mode: 0o700 });
    const meta = sb.workspace.requireMeta();
    // Both run to their end before anything is thrown: one that failed (disk full) must not
    // leave the other writing into the work dir while `finally` removes it.
    const [snapped, packed] = await Promise.allSettled([
      snapshotWorkspace(sb.workspace, {
        id: req.checkpoint_id,
        createdAt: req.created_at,
        privateDir: sb.checkpoints.snapshotGitDir,
        bundleFile: join(out, "workspace.bundle"),
        parent: req.parent,
        upstream: upstreamOf(meta.repo, req.credentials),
      }),
      packOpencodeData(
        sb.config.home_dir,
        join(work, "opencode-data"),
        join(out, "opencode-data.tar.gz"),
      ).finally(() => {
        packedAt = Date.now() - t0;
      }),
    ]);
    if (snapped.status === "rejected") throw snapped.reason;
    if (packed.status === "rejected") throw packed.reason;
    const snap = snapped.value;
    const data = packed.value;
    const manifest: CheckpointManifestData = {
      schema_version: 1,
      checkpoint_id: req.checkpoint_id,
      sandbox_id: sb.sandboxId,
      created_at: req.created_at,
      branch: snap.branch,
      base_commit: meta.base_commit,
      head_commit: snap.head,
      checkpoint_commit: snap.commit,
      tree_hash: snap.tree,
      artifacts: [
        { name: "workspace.bundle", ...snap.bundle },
        { name: "opencode-data.tar.gz", sha256: data.sha256, bytes: data.bytes },
      ],
      ...(snap.dependsOn ? { depends_on: snap.dependsOn } : {}),
    };
    sb.checkpoints.publish(work, manifest);
    savedTrees.set(sb, snap.tree);
    sb.log.info("checkpoint written", {
      checkpoint_id: req.checkpoint_id,
      tree_hash: snap.tree,
      bytes: snap.bundle.bytes + data.bytes,
      thin: snap.dependsOn ? snap.dependsOn.prerequisites.length : 0,
      db_copy_attempts: data.db_copy_attempts,
      agent: sb.agent.state,
      ms: Date.now() - t0,
      // When each step ended, in ms since the request began (docs/performance.md).
      phases: { ...snap.phases, opencode_data_ms: packedAt },
    });
    return manifest;
  } catch (err) {
    const e = toAlpineError(err);
    sb.log.error("checkpoint failed", { checkpoint_id: req.checkpoint_id, error: e.toJSON() });
    throw e.reason === "internal_error"
      ? new AlpineError("checkpoint_failed", `checkpoint failed: ${e.message}`, e.details)
      : e;
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
    end();
  }
}

/**
 * On SIGTERM of a runtime whose disk dies with it (config `exit_checkpoint`): a checkpoint of
 * the workspace and OpenCode's sessions, written exactly as `POST /v1/checkpoint` writes one
 * (so the control plane copies, verifies and records it with its ordinary checkpoint code),
 * when there is unsaved work: changes against the base commit whose tree this process has not
 * checkpointed yet. Null when there is nothing to save or the workspace is not ready.
 */
export async function writeExitCheckpoint(sb: Sandbox): Promise<CheckpointManifestData | null> {
  if (sb.phase !== "ready") return null;
  const ws = await sb.workspaceStatus();
  if (!ws || (!ws.dirty && ws.ahead === 0) || (ws.tree_hash && ws.tree_hash === savedTrees.get(sb))) {
    return null;
  }
  const now = new Date();
  return writeCheckpoint(sb, {
    checkpoint_id: `ckpt_exit_${now.getTime().toString(36)}`,
    created_at: now.toISOString(),
  });
}

/**
 * Waits until the control plane has taken a checkpoint (it deletes sandboxd's copy once its own
 * is verified) or `holdMs` passed; true when it was taken.
 */
export async function holdForCollection(sb: Sandbox, checkpointId: string, holdMs: number): Promise<boolean> {
  const dir = join(sb.checkpoints.root, checkpointId);
  const deadline = Date.now() + holdMs;
  while (existsSync(dir)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 250));
  }
  return true;
}
