// The documented contract stays true to the code: generated JSON Schemas are
// current, every reason code renders the five-key error object and is
// documented, every CLI command and flag is documented, every config key and
// every `--json` output key is documented. The commands come from the CLI's
// registry (packages/cli/src/commands/registry.ts), the source the CLI is built from.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type FlagSpecs, leafCommands, longFlag } from "../packages/cli/src/commands/define.ts";
import { GLOBAL_FLAGS, VERSION_FLAG } from "../packages/cli/src/commands/program.ts";
import { REGISTRY } from "../packages/cli/src/commands/registry.ts";
import {
  AlpineError,
  CONFIG_KEYS,
  DEFAULT_CONFIG,
  ErrorOutputSchema,
  envNameFor,
  OUTPUT_SCHEMAS,
  REASON_CODES,
  REASONS,
} from "../packages/core/src/index.ts";

const ROOT = join(import.meta.dirname, "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const GEN = join(ROOT, "scripts", "gen-schemas.mjs");
const CLI_BUNDLE = join(ROOT, "packages", "cli", "dist", "alpine.js");
const CLI_BIN = join(ROOT, "packages", "cli", "bin", "alpine.js");

const tmpDirs: string[] = [];
const tmp = () => {
  const dir = mkdtempSync(join(tmpdir(), "alpine-contract-"));
  tmpDirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

/** The text under a markdown heading, up to the next heading of the same or a higher level. */
function section(md: string, heading: string): string | null {
  const lines = md.split("\n");
  const start = lines.findIndex((l) => l.trim() === heading);
  if (start < 0) return null;
  const level = heading.match(/^#+/)?.[0].length ?? 0;
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    const m = /^(#+)\s/.exec(line);
    if (m && m[1]!.length <= level) break;
    out.push(line);
  }
  return out.join("\n");
}

/** Rows of a markdown table as cells, for the rows whose first cell is `code` in backticks. */
function codeRows(md: string): string[][] {
  return md
    .split("\n")
    .filter((l) => /^\|\s*`[^`]+`\s*\|/.test(l))
    .map((l) =>
      l
        .trim()
        .replace(/^\||\|$/g, "")
        .split("|")
        .map((c) => c.trim()),
    );
}

const unquote = (cell: string) => cell.replace(/^`|`$/g, "");

describe("docs/schemas", () => {
  it("the committed schema files are exactly what scripts/gen-schemas.mjs generates", () => {
    const r = spawnSync(process.execPath, [GEN, "--check"], { cwd: ROOT, encoding: "utf8" });
    expect(r.stderr, "run `npm run schemas` and commit docs/schemas").toBe("");
    expect(r.status).toBe(0);
  });

  it("--check fails on an edited, a missing and a stale schema file", () => {
    const dir = tmp();
    cpSync(join(ROOT, "docs", "schemas"), dir, { recursive: true });
    const launch = join(dir, "launch.schema.json");
    const edited = JSON.parse(readFileSync(launch, "utf8"));
    delete edited.properties.web_url;
    writeFileSync(launch, `${JSON.stringify(edited, null, 2)}\n`);
    rmSync(join(dir, "gc.schema.json"));
    writeFileSync(join(dir, "gone.schema.json"), "{}\n");

    const r = spawnSync(process.execPath, [GEN, "--check", "--out", dir], { cwd: ROOT, encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("out of date: launch.schema.json");
    expect(r.stderr).toContain("missing: gc.schema.json");
    expect(r.stderr).toContain("stale (no schema generates it): gone.schema.json");
  });

  it("there is one file per output schema, plus the config file's", () => {
    for (const name of [...Object.keys(OUTPUT_SCHEMAS), "config"]) {
      expect(existsSync(join(ROOT, "docs", "schemas", `${name}.schema.json`)), name).toBe(true);
    }
  });

  it("the error schema forbids extra keys; output schemas allow new ones (json-contract.md)", () => {
    const error = JSON.parse(read("docs/schemas/error.schema.json"));
    expect(error.additionalProperties).toBe(false);
    expect([...error.required].sort()).toEqual(["details", "error", "exit_code", "reason_code", "retryable"]);
    expect(error.properties.reason_code.enum).toEqual(REASON_CODES);
    const launch = JSON.parse(read("docs/schemas/launch.schema.json"));
    expect(launch.additionalProperties).toBeUndefined();
  });
});

describe("reason codes", () => {
  it.each(REASON_CODES)("%s renders the five-key error object", (code) => {
    const json = new AlpineError(code, "something failed").toJSON();
    expect(Object.keys(json).sort()).toEqual(["details", "error", "exit_code", "reason_code", "retryable"]);
    expect([1, 2]).toContain(json.exit_code);
    expect(json).toEqual({
      error: "something failed",
      exit_code: REASONS[code].exit,
      reason_code: code,
      retryable: REASONS[code].retryable,
      details: {},
    });
    const wire = JSON.parse(JSON.stringify(json));
    expect(ErrorOutputSchema.parse(wire)).toEqual(json);
    expect(AlpineError.fromJSON(wire).toJSON()).toEqual(json);
  });

  it("docs/errors.md documents every reason code once, with its exit code and retryable flag", () => {
    const table = section(read("docs/errors.md"), "## Reason codes");
    expect(table, "docs/errors.md needs a '## Reason codes' section").not.toBeNull();
    const rows = codeRows(table!);
    const documented = rows.map((r) => unquote(r[0]!));
    expect(new Set(documented).size, "a code is documented twice").toBe(documented.length);
    expect([...documented].sort()).toEqual([...REASON_CODES].sort());
    for (const row of rows) {
      const code = unquote(row[0]!) as keyof typeof REASONS;
      expect(row[1], `exit code of ${code}`).toBe(String(REASONS[code].exit));
      expect(row[2], `retryable of ${code}`).toBe(REASONS[code].retryable ? "yes" : "no");
      expect(row[3]?.length ?? 0, `meaning of ${code}`).toBeGreaterThan(10);
      expect(row[4]?.length ?? 0, `what to do about ${code}`).toBeGreaterThan(5);
    }
  });
});

/** Every verb with its full path (`auth sync`), from the registry the CLI is built from. */
const VERBS = leafCommands(REGISTRY);

/** The long flags of a set of declared flags: `--repo`, `--no-wait`. */
const longFlags = (flags: FlagSpecs) => Object.entries(flags).map(([key, spec]) => longFlag(key, spec));

describe("the command registry", () => {
  it("holds every verb once", () => {
    const paths = VERBS.map((v) => v.path);
    expect(paths).toEqual(
      expect.arrayContaining(["launch", "list", "status", "teardown", "auth sync", "config show", "version"]),
    );
    expect(new Set(paths).size, "a verb is declared twice").toBe(paths.length);
  });

  it.each(VERBS.map((v) => [v.path, v.command] as const))(
    "`alpine %s` has a summary, examples of itself and an output schema that exists",
    (path, command) => {
      expect(command.summary.length).toBeGreaterThan(5);
      expect(command.examples.some((e) => e.startsWith(`alpine ${path}`))).toBe(true);
      expect(Object.keys(OUTPUT_SCHEMAS)).toContain(command.output);
      expect(existsSync(join(ROOT, "docs", "schemas", `${command.output}.schema.json`)), command.output).toBe(
        true,
      );
    },
  );

  it("every output schema but the error object's is some verb's", () => {
    const used = new Set<string>(VERBS.map((v) => v.command.output));
    // A flag that changes what a verb prints has its own schema: `logs --audit`.
    used.add("logs-audit");
    expect(
      Object.keys(OUTPUT_SCHEMAS).filter((name) => name !== "error" && !used.has(name as never)),
    ).toEqual([]);
  });
});

describe("docs/cli.md", () => {
  const cliMd = read("docs/cli.md");

  it.each(VERBS.map((v) => [v.path, v.command] as const))(
    "documents `alpine %s`, each of its flags and aliases, and links its --json schema",
    (path, command) => {
      const body = section(cliMd, `## alpine ${path}`);
      expect(body, `docs/cli.md needs a '## alpine ${path}' section`).not.toBeNull();
      for (const flag of longFlags(command.flags))
        expect(body, `alpine ${path} ${flag}`).toContain(`\`${flag}`);
      for (const alias of command.aliases) expect(body, `alias ${alias}`).toContain(`alpine ${alias}`);
      expect(body, `alpine ${path}: link its --json schema`).toContain(
        `](schemas/${command.output}.schema.json)`,
      );
    },
  );

  it("documents every global flag", () => {
    const body = section(cliMd, "## Global flags");
    expect(body).not.toBeNull();
    const flags = [...longFlags(GLOBAL_FLAGS), /--[a-z]+/.exec(VERSION_FLAG)![0]];
    expect(flags).toEqual(expect.arrayContaining(["--json", "--verbose", "--config", "--version"]));
    for (const flag of flags) expect(body, flag).toContain(`\`${flag}`);
  });

  it("documents no command that does not exist", () => {
    const documented = [...cliMd.matchAll(/^## alpine (.+)$/gm)].map((m) => m[1]!.trim());
    expect([...documented].sort()).toEqual(VERBS.map((v) => v.path).sort());
  });

  // Cross-checks the registry against the built CLI (present after `npm test` builds): what
  // commander was given is what --help shows.
  describe.skipIf(!existsSync(CLI_BUNDLE))("against the built CLI's --help", () => {
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: "1", ALPINE_HOME: tmp() };
    const help = (args: string[]) => {
      const r = spawnSync(process.execPath, [CLI_BIN, ...args, "--help"], {
        cwd: ROOT,
        env,
        encoding: "utf8",
      });
      expect(r.status, `alpine ${args.join(" ")} --help: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const block = (text: string, title: string) => {
      const lines = text.split("\n");
      const start = lines.indexOf(title);
      if (start < 0) return [];
      const end = lines.findIndex((l, i) => i > start && l.trim() === "");
      return lines.slice(start + 1, end < 0 ? undefined : end);
    };
    const subcommands = (text: string) =>
      block(text, "Commands:")
        .map((l) => /^ {2}([a-z][\w|-]*)/.exec(l)?.[1])
        .filter((n): n is string => n !== undefined)
        .map((n) => n.split("|")[0]!)
        .filter((n) => n !== "help");
    const ownFlags = (text: string) =>
      block(text, "Options:")
        .map((l) => /^ {2}(?:-\w, )?(--[a-z][a-z0-9-]*)/.exec(l)?.[1])
        .filter((f): f is string => f !== undefined && f !== "--help");

    it("every command and flag in --help is documented", () => {
      const leaves: { path: string[]; text: string }[] = [];
      const walk = (path: string[]) => {
        const text = help(path);
        const subs = path.length === 0 || subcommands(text).length > 0 ? subcommands(text) : [];
        if (path.length > 0 && subs.length === 0) leaves.push({ path, text });
        for (const sub of subs) walk([...path, sub]);
      };
      walk([]);
      expect(leaves.length).toBeGreaterThanOrEqual(10);
      for (const leaf of leaves) {
        const name = leaf.path.join(" ");
        const body = section(cliMd, `## alpine ${name}`);
        expect(body, `docs/cli.md needs a '## alpine ${name}' section`).not.toBeNull();
        for (const flag of ownFlags(leaf.text)) expect(body, `alpine ${name} ${flag}`).toContain(`\`${flag}`);
      }
      const globals = section(cliMd, "## Global flags")!;
      for (const flag of ownFlags(help([]))) expect(globals, flag).toContain(`\`${flag}`);
    });
  });
});

describe("docs/config.md", () => {
  const rows = codeRows(section(read("docs/config.md"), "## Keys") ?? "");
  const byKey = new Map(rows.map((r) => [unquote(r[0]!), r]));

  it("documents exactly the config keys core knows", () => {
    expect([...byKey.keys()].sort()).toEqual([...CONFIG_KEYS].sort());
  });

  it.each(CONFIG_KEYS)("%s: its environment variable and default", (key) => {
    const row = byKey.get(key);
    expect(row, `docs/config.md: no row for ${key}`).toBeDefined();
    expect(row!.join("|"), `env variable of ${key}`).toContain(`\`${envNameFor(key)}\``);
    const [section, leaf] = key.split(".") as [string, string];
    const value = (DEFAULT_CONFIG as unknown as Record<string, Record<string, unknown>>)[section]?.[leaf];
    const documented = row![2]!;
    if (value === undefined) expect(documented, `${key} has no default`).toBe("–");
    else if (typeof value !== "object") expect(documented, `default of ${key}`).toBe(`\`${String(value)}\``);
  });
});

describe("docs/json-contract.md", () => {
  const md = read("docs/json-contract.md");
  const headings: Record<string, string> = {
    error: "## The error object",
    "auth-sync": "### auth sync",
    "secrets-set": "### secrets set",
    "secrets-ls": "### secrets ls",
    "secrets-rm": "### secrets rm",
    "config-show": "### config show",
    "image-build": "### image build",
    "cloud-dev": "### cloud dev",
    "cloud-deploy": "### cloud deploy",
    "logs-audit": "### logs --audit",
    "sessions-ls": "### sessions ls",
    "sessions-revoke": "### sessions revoke",
  };

  it.each(Object.keys(OUTPUT_SCHEMAS))("documents every top-level key of the %s output", (name) => {
    const heading = headings[name] ?? `### ${name}`;
    const body = section(md, heading);
    expect(body, `docs/json-contract.md needs '${heading}'`).not.toBeNull();
    expect(body).toContain(`(schemas/${name}.schema.json)`);
    const schema = OUTPUT_SCHEMAS[name as keyof typeof OUTPUT_SCHEMAS] as unknown as {
      shape?: Record<string, unknown>;
      element?: { shape?: Record<string, unknown> };
    };
    const keys = Object.keys(schema.shape ?? schema.element?.shape ?? {});
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(body, `${name}.${key}`).toContain(`\`${key}\``);
  });
});
