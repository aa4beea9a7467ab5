import { describe, expect, it } from "vitest";
import {
  AlpineError,
  agentSecretEnv,
  GLOBAL_SCOPE,
  SECRET_VALUE_MAX_BYTES,
  type StoredSecret,
  secretsForRepo,
  validateSecretName,
  validateSecretScope,
  validateSecretValue,
} from "../src/index.ts";

const at = "2026-01-01T00:00:00.000Z";
const stored = (name: string, scope: string, value: string, agent = false): StoredSecret => ({
  name,
  scope,
  value,
  agent,
  updated_at: at,
});

describe("validateSecretName", () => {
  for (const ok of ["NPM_TOKEN", "_X", "a1", "DATABASE_URL"])
    it(`accepts ${ok}`, () => expect(validateSecretName(ok)).toBe(ok));
  const bad: [string, string][] = [
    ["a leading digit", "1X"],
    ["a dash", "A-B"],
    ["an equals sign", "A=B"],
    ["a space", "A B"],
    ["empty", ""],
    ["PATH (the sandbox sets it)", "PATH"],
    ["HOME", "HOME"],
    ["an OPENCODE_ variable", "OPENCODE_SERVER_PASSWORD"],
    ["a proxy variable", "https_proxy"],
    ["a loader variable", "LD_PRELOAD"],
    ["129 characters", "A".repeat(129)],
  ];
  for (const [label, name] of bad)
    it(`refuses ${label}`, () => {
      try {
        validateSecretName(name);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(AlpineError);
        expect((err as AlpineError).reason).toBe("usage_invalid");
      }
    });
});

const refused = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AlpineError);
    return (err as AlpineError).reason;
  }
  return "accepted";
};

describe("validateSecretScope (what the control plane accepts as a scope)", () => {
  for (const ok of [
    GLOBAL_SCOPE,
    "https://github.com/acme/app",
    "/home/me/app",
    "git@github.com:acme/app.git",
  ])
    it(`accepts ${ok}`, () => expect(validateSecretScope(ok)).toBe(ok));
  const bad: [string, string][] = [
    ["empty", ""],
    ["a space", "https://x/a b"],
    ["a newline", "global\nx"],
    ["a NUL", "a\u0000b"],
    ["2049 characters", "a".repeat(2049)],
  ];
  for (const [label, scope] of bad)
    it(`refuses ${label}`, () => expect(refused(() => validateSecretScope(scope))).toBe("usage_invalid"));
});

describe("validateSecretValue", () => {
  it("accepts a value up to the limit, in bytes", () => {
    expect(validateSecretValue("X", "v")).toBe("v");
    expect(refused(() => validateSecretValue("X", "a".repeat(SECRET_VALUE_MAX_BYTES)))).toBe("accepted");
  });
  const bad: [string, string][] = [
    ["empty", ""],
    ["a NUL byte", "a\u0000b"],
    ["one byte too many", "a".repeat(SECRET_VALUE_MAX_BYTES + 1)],
    ["multi-byte characters over the limit", "é".repeat(SECRET_VALUE_MAX_BYTES / 2 + 1)],
  ];
  for (const [label, value] of bad)
    it(`refuses ${label}, without echoing the value`, () => {
      try {
        validateSecretValue("X", value);
        expect.unreachable();
      } catch (err) {
        expect((err as AlpineError).reason).toBe("usage_invalid");
        if (value) expect(JSON.stringify((err as AlpineError).toJSON())).not.toContain(value.slice(0, 20));
      }
    });
});

describe("secretsForRepo", () => {
  const repo = "https://example.com/a/app";
  const cases: [string, StoredSecret[], { name: string; value: string; agent: boolean }[]][] = [
    ["nothing stored", [], []],
    [
      "a global secret reaches every repo",
      [stored("G", GLOBAL_SCOPE, "g")],
      [{ name: "G", value: "g", agent: false }],
    ],
    ["another repo's secret does not", [stored("O", "https://example.com/a/other", "o")], []],
    [
      "a repo's own secret replaces a global one of the same name, agent flag included",
      [stored("T", GLOBAL_SCOPE, "global", true), stored("T", repo, "repo", false)],
      [{ name: "T", value: "repo", agent: false }],
    ],
    [
      "sorted by name",
      [stored("B", repo, "b", true), stored("A", GLOBAL_SCOPE, "a")],
      [
        { name: "A", value: "a", agent: false },
        { name: "B", value: "b", agent: true },
      ],
    ],
  ];
  for (const [label, input, want] of cases)
    it(label, () => expect(secretsForRepo(input, repo)).toEqual(want));
});

describe("agentSecretEnv", () => {
  it("holds only the secrets marked for the agent", () => {
    expect(
      agentSecretEnv([
        { name: "SETUP_ONLY", value: "s", agent: false },
        { name: "FOR_AGENT", value: "a", agent: true },
      ]),
    ).toEqual({ FOR_AGENT: "a" });
    expect(agentSecretEnv(undefined)).toEqual({});
  });
});
