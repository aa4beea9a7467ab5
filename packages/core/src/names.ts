import { AlpineError } from "./errors.ts";

/** Sandbox names: lowercase letters, digits and dashes, 1-50 characters, not starting with a dash. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,49}$/;

/** The one name check every command uses; throws name_invalid with what was wrong. */
export function validateName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0) {
    throw new AlpineError("name_invalid", "sandbox name is empty", { name: name ?? null });
  }
  if (name.length > 50) {
    throw new AlpineError(
      "name_invalid",
      `sandbox name is ${name.length} characters; at most 50 are allowed`,
      {
        name,
      },
    );
  }
  if (!NAME_PATTERN.test(name)) {
    throw new AlpineError(
      "name_invalid",
      `sandbox name '${name}' is invalid: use lowercase letters, digits and '-', not starting with '-'`,
      { name },
    );
  }
  return name;
}
