import { describe, expect, it } from "vitest";
import { AlpineError, validateName } from "../src/index.ts";

describe("validateName", () => {
  const invalid: [string, unknown][] = [
    ["path traversal", "../x"],
    ["upper case", "UPPER"],
    ["space", "a b"],
    ["leading dash", "-x"],
    ["51 characters", "a".repeat(51)],
    ["empty", ""],
    ["slash", "a/b"],
    ["underscore", "a_b"],
    ["dot", "a.b"],
    ["unicode", "café"],
    ["newline", "a\nb"],
    ["not a string", 42],
  ];
  for (const [label, name] of invalid) {
    it(`refuses ${label}`, () => {
      try {
        validateName(name);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(AlpineError);
        expect((err as AlpineError).reason).toBe("name_invalid");
        expect((err as AlpineError).exitCode).toBe(1);
      }
    });
  }
  for (const name of ["a", "fix-login", "x1", "a".repeat(50), "0day", "a-b-c-"]) {
    it(`accepts '${name.length > 12 ? `${name.slice(0, 8)}…(${name.length})` : name}'`, () => {
      expect(validateName(name)).toBe(name);
    });
  }
});
