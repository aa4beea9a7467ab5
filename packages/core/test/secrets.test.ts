import { describe, expect, it } from "vitest";
import {
  AlpineError,
  agentSecretEnv,
  GLOBAL_SCOPE,
  type StoredSecret,
  secretsForRepo,
  validateSecretName,
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
