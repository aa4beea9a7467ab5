import type { CheckpointManifest } from "../../ports.ts";
import type { SandboxRecord } from "../../schemas.ts";
import type { Probe } from "../types.ts";

/**
 * A runtime whose disk dies with it (a Cloudflare Container) that got SIGTERM (a rollout) has its
 * sandboxd write a checkpoint of unsaved work and hold it, reported in its status as
 * `exit_checkpoint` (docs/cloudflare.md, "Rollouts"). The control plane copies that one instead
 * of asking for a new checkpoint: the agent is being stopped, and sandboxd exits once it is taken.
 */

/** The exit checkpoint to collect now, or null: none is held, or it is not this sandbox's to take. */
export function exitCheckpointToCollect(
  record: Pick<SandboxRecord, "id" | "state" | "checkpoint">,
  probe: Pick<Probe, "state" | "status">,
): CheckpointManifest | null {
  const held = probe.state === "ok" ? probe.status?.exit_checkpoint : undefined;
  if (!held) return null;
  // Only a live sandbox moves through saving; another state means an operation is already ending it.
  if (record.state !== "running" && record.state !== "completed") return null;
  // A runtime of another sandbox (a reused handle) never writes into this one's checkpoints.
  if (held.sandbox_id !== record.id) return null;
  // Already recorded: only sandboxd's copy is left, and the teardown that follows removes it.
  if (record.checkpoint?.id === held.checkpoint_id) return null;
  return held;
}
