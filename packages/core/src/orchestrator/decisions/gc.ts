import type { AlpineConfig } from "../../config.ts";
import type { SandboxRecord } from "../../schemas.ts";

/**
 * Which completed sandboxes `gc` may tear down (docs/durability.md, "Automatic teardown"): those
 * past their retention period; the teardown's own safety checks still apply.
 */
export type GcVerdict = { kind: "skip" } | { kind: "keep"; reason: string } | { kind: "due" };

export function gcVerdict(record: SandboxRecord, now: number, config: AlpineConfig): GcVerdict {
  if (record.state !== "completed") return { kind: "skip" };
  if (!config.sandbox.auto_teardown) return { kind: "keep", reason: "auto_teardown is off" };
  const finished = Date.parse(record.task?.finished_at ?? record.updated_at);
  const dueAt = finished + config.sandbox.completed_retention_minutes * 60_000;
  if (now < dueAt) return { kind: "keep", reason: `retained until ${new Date(dueAt).toISOString()}` };
  return { kind: "due" };
}
