import type { SandboxRecord } from "./schemas.ts";

/**
 * Fills in fields added to sandbox records after they were first written
 * (stored JSON is never rewritten in bulk). Kept apart from the zod schemas so
 * reading the store does not load zod.
 */
export function normaliseRecord(
  raw: Partial<SandboxRecord> & Pick<SandboxRecord, "id" | "name">,
): SandboxRecord {
  return { checkpoint: null, export: null, task: null, error: null, runtime: null, ...raw } as SandboxRecord;
}
