import type { SandboxRecord, StoredEvent } from "./schemas.ts";

/**
 * Fills in fields added to sandbox records after they were first written
 * (stored JSON is never rewritten in bulk). Kept apart from the zod schemas so
 * reading the store does not load zod.
 */
export function normaliseRecord(
  raw: Partial<SandboxRecord> & Pick<SandboxRecord, "id" | "name">,
): SandboxRecord {
  const record = {
    checkpoint: null,
    export: null,
    task: null,
    error: null,
    runtime: null,
    ...raw,
  } as SandboxRecord;
  // Stores written before the state was renamed (issue 17) hold `waiting_permission`.
  if ((record.agent as string) === "waiting_permission") record.agent = "needs_input";
  return record;
}

/** A record in state `new`, before anything has run: the one place its initial shape is written. */
export function newSandboxRecord(
  fields: Pick<SandboxRecord, "id" | "name" | "provider" | "repo" | "ref" | "branch" | "image_profile">,
  at: string,
): SandboxRecord {
  return {
    ...fields,
    state: "new",
    created_at: at,
    updated_at: at,
    last_activity: null,
    agent: "unknown",
    runtime: null,
    task: null,
    checkpoint: null,
    export: null,
    error: null,
    version: 1,
  };
}

/**
 * A note in a sandbox's event history (what happened that is not a state change, and why): the
 * orchestrator's, the alarm's and the notifier's all have this one shape.
 */
export function noteEvent(
  sandbox: Pick<SandboxRecord, "id" | "name">,
  reason: string,
  opts: { at?: string; operationId?: string | null } = {},
): StoredEvent {
  return {
    sandbox_id: sandbox.id,
    name: sandbox.name,
    at: opts.at ?? new Date().toISOString(),
    kind: "note",
    from: null,
    to: null,
    operation_id: opts.operationId ?? null,
    reason,
  };
}
