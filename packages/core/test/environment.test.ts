import { describe, expect, it } from "vitest";
import { ConfigSchema } from "../src/config.ts";
import {
  cacheKeyFiles,
  parseDevcontainer,
  preparationKeyInput,
  resolveEnvironment,
} from "../src/environment.ts";

const DEV = `{
  // comments and trailing commas, as editors write them
  "name": "app",
  "image": "mcr.microsoft.com/devcontainers/javascript-node:20",
  "postCreateCommand": "npm ci",
  "postStartCommand": ["node", "server.js", "--msg", "it's up"],
  "forwardPorts": [3000, "db:5432"],
  "containerEnv": { "A": "1", "B": "container" },
  "remoteEnv": { "B": "remote", "HOME_DIR": "\${containerEnv:HOME}" },
  "customizations": { "vscode": {} },
  "features": {},
}`;

describe("parseDevcontainer", () => {
  const cases: { name: string; text: string; expect: Partial<ReturnType<typeof parseDevcontainer>> }[] = [
    {
      name: "the common subset, with comments",
      text: DEV,
      expect: {
        image: "mcr.microsoft.com/devcontainers/javascript-node:20",
        setup: ["npm ci"],
        start: ["node server.js --msg 'it'\\''s up'"],
        ports: [3000],
        env: { A: "1", B: "remote" },
        unsupported: ["customizations", "features"],
      },
    },
    {
      name: "object form: named commands in key order",
      text: '{"postCreateCommand": {"deps": "npm ci", "build": ["make", "all"]}}',
      expect: { setup: ["npm ci", "make all"], start: [] },
    },
    {
      name: "build.dockerfile",
      text: '{"build": {"dockerfile": "Dockerfile"}}',
      expect: { image: null, dockerfile: "Dockerfile", unsupported: [] },
    },
    { name: "empty file", text: "", expect: { setup: [], unsupported: [] } },
  ];
  for (const c of cases) it(c.name, () => expect(parseDevcontainer(c.text)).toMatchObject(c.expect));

  it("reports what it cannot use instead of throwing", () => {
    const d = parseDevcontainer(DEV);
    expect(d.problems.join("\n")).toMatch(/db:5432/);
    expect(d.problems.join("\n")).toMatch(/remoteEnv.HOME_DIR: variable substitution/);
    expect(parseDevcontainer("{ not json").problems[0]).toMatch(/^syntax: /);
    expect(parseDevcontainer('{"postCreateCommand": 3}').problems).toEqual([
      "postCreateCommand: must be a string, an array of strings or an object of commands",
    ]);
  });
});

describe("resolveEnvironment (devcontainer, then alpine's environment: over it)", () => {
  const dev = parseDevcontainer(DEV);
  const table: {
    name: string;
    dev: ReturnType<typeof parseDevcontainer> | null;
    section: Parameters<typeof resolveEnvironment>[1];
    expect: Partial<ReturnType<typeof resolveEnvironment>>;
  }[] = [
    {
      name: "nothing declared",
      dev: null,
      section: undefined,
      expect: {
        setup: [],
        start: [],
        env: {},
        ports: [],
        sources: { setup: "none", start: "none", env: "none", ports: "none" },
        notices: [],
      },
    },
    {
      name: "devcontainer only",
      dev,
      section: {},
      expect: {
        setup: ["npm ci"],
        ports: [3000],
        sources: { setup: "devcontainer", start: "devcontainer", env: "devcontainer", ports: "devcontainer" },
      },
    },
    {
      name: "config replaces commands, merges env (config wins), unions ports",
      dev,
      section: { setup: ["make deps"], env: { B: "config", C: "3" }, ports: [8080, 3000] },
      expect: {
        setup: ["make deps"],
        start: ["node server.js --msg 'it'\\''s up'"],
        env: { A: "1", B: "config", C: "3" },
        ports: [3000, 8080],
        sources: { setup: "config", start: "devcontainer", env: "both", ports: "both" },
      },
    },
    {
      name: "config only, with secrets names and key files",
      dev: null,
      section: { start: ["./serve"], secrets: ["NPM_TOKEN"], cache_key_files: ["deps.txt"] },
      expect: {
        start: ["./serve"],
        secrets: ["NPM_TOKEN"],
        cache_key_files: ["deps.txt"],
        sources: { setup: "none", start: "config", env: "none", ports: "none" },
      },
    },
  ];
  for (const row of table)
    it(row.name, () => expect(resolveEnvironment(row.dev, row.section)).toMatchObject(row.expect));

  it("reports unsupported keys and the unused image once each", () => {
    const n = resolveEnvironment(dev, {}).notices;
    expect(n.filter((l) => l.includes("not supported, ignored: customizations, features"))).toHaveLength(1);
    expect(n.filter((l) => l.includes("is reported, not used"))).toHaveLength(1);
  });
});

describe("cache keys", () => {
  it("default key files are the lockfiles present; cache_key_files replaces them", () => {
    const env = resolveEnvironment(null, {});
    const present = new Set(["package-lock.json", "Cargo.lock"]);
    expect(cacheKeyFiles(env, (p) => present.has(p))).toEqual(["package-lock.json", "Cargo.lock"]);
    expect(cacheKeyFiles(resolveEnvironment(null, { cache_key_files: ["x"] }), () => false)).toEqual(["x"]);
  });
  it("the key input changes with each of its parts and not with file order", () => {
    const base = {
      repo: "r",
      image: "i",
      setup: ["a"],
      files: [
        { path: "a.lock", sha256: "1" },
        { path: "b.lock", sha256: null },
      ],
    };
    const k = preparationKeyInput(base);
    expect(preparationKeyInput({ ...base, files: [...base.files].reverse() })).toBe(k);
    for (const other of [
      { ...base, repo: "r2" },
      { ...base, image: "i2" },
      { ...base, setup: ["b"] },
      { ...base, files: [{ path: "a.lock", sha256: "2" }] },
    ])
      expect(preparationKeyInput(other)).not.toBe(k);
  });
});

describe("config: environment section", () => {
  it("is optional, strict, and checks variable names", () => {
    expect(ConfigSchema.parse({}).environment).toEqual({});
    expect(() => ConfigSchema.parse({ environment: { setup: ["x"], bogus: 1 } })).toThrow();
    expect(() => ConfigSchema.parse({ environment: { env: { "NOT-A-NAME": "x" } } })).toThrow();
    expect(ConfigSchema.parse({ environment: { ports: [3000] } }).environment.ports).toEqual([3000]);
  });
});
