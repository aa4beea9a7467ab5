import { AlpineError } from "./errors.ts";
import type { RuntimeHandle } from "./ports.ts";
import type { ProviderKind } from "./schemas.ts";

/**
 * A stored runtime handle as the provider's own shape, once the string fields
 * it cannot work without are there (a handle written by another provider or
 * an older alpine is an internal error, not something to guess at).
 */
export function requireHandle<T>(
  kind: ProviderKind,
  handle: RuntimeHandle,
  fields: readonly (keyof T & string)[],
): T {
  const missing = fields.filter((f) => typeof handle[f] !== "string");
  if (missing.length > 0)
    throw new AlpineError("internal_error", `${kind} runtime handle is incomplete`, { missing });
  return handle as T;
}
