import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleHelper } from "../helpers/bundle.ts";
import { recorder, run, show } from "./harness.ts";

/**
 * Issue 7, hostile input: every value below must be refused by the CLI with a precise reason
 * code before any process runs. "Before any process runs" is checked, not assumed: `git` on
 * the CLI's PATH is a shim that logs every call, the payloads try to create a marker file,
 * and afterwards no sandbox dir, no runtime and no git call may exist.
 */
const record = recorder("inputs");
let root: string;
let alpineHome: string;
let marker: string;
let gitLog: string;
let env: NodeJS.ProcessEnv;
let repo: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "alpine-rel-inputs-"));
  alpineHome = join(root, "alpine-home");
  marker = join(root, "INJECTED");
  gitLog = join(root, "git-calls.log");
  const bin = join(root, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "git"), `#!/bin/sh\necho "$*" >> '${gitLog}'\nexec /usr/bin/git "$@"\n`);
  chmodSync(join(bin, "git"), 0o755);
  repo = join(root, "repo");
  mkdirSync(join(repo, ".git"), { recursive: true });
  env = {
    HOME: root,
    ALPINE_HOME: alpineHome,
    XDG_CONFIG_HOME: join(root, "config"),
    PATH: `${bin}:${process.env.PATH}`,
  };
  // A record to aim export/task/teardown at (no runtime): the names and branches are what fail.
  const worker = await bundleHelper("test/reliability/db-worker.ts");
  const { execFileSync } = await import("node:child_process");
  mkdirSync(alpineHome);
  execFileSync(process.execPath, [worker, "seed", join(alpineHome, "state.db"), "target"]);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

const cli = (args: string[], cwd = root, extraEnv: NodeJS.ProcessEnv = {}) =>
  run(args, { env: { ...env, ...extraEnv }, cwd });

/** Runs cases with a little parallelism (each is a CLI process). */
async function each<T>(cases: T[], fn: (c: T) => Promise<void>, width = 4): Promise<void> {
  const queue = [...cases];
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let c = queue.shift(); c !== undefined; c = queue.shift()) await fn(c);
    }),
  );
}

/** Nothing ran: no git call, no marker, no sandbox dir, the seeded record alone in the store. */
async function nothingRan(): Promise<void> {
  expect(existsSync(gitLog) ? readFileSync(gitLog, "utf8") : "").toBe("");
  expect(existsSync(marker)).toBe(false);
  expect(existsSync(join(alpineHome, "sandboxes")) ? readdirSync(join(alpineHome, "sandboxes")) : []).toEqual(
    [],
  );
  const list = await cli(["list", "--json"]);
  expect(list.json().map((s: { name: string }) => s.name)).toEqual(["target"]);
}

describe("hostile input is refused before anything runs", () => {
  it("--repo: option injection, transport helpers, shell metacharacters, credentials, odd schemes, over-long", async () => {
    const m = () => marker;
    const cases: [string, string, string[]?][] = [
      [`--upload-pack=touch ${m()}`, "repo_resolution_failed"],
      [`-oProxyCommand=touch ${m()}`, "repo_resolution_failed"],
      [`--config=core.sshCommand=touch ${m()}`, "repo_resolution_failed"],
      [`ext::sh -c touch% ${m()}`, "repo_resolution_failed"],
      ["fd::17", "repo_resolution_failed"],
      ["transport::https://example.com/r.git", "repo_resolution_failed"],
      [`https://example.com/r.git;touch ${m()}`, "repo_resolution_failed"],
      [`https://example.com/$(touch ${m()})`, "repo_resolution_failed"],
      [`https://example.com/\`touch ${m()}\``, "repo_resolution_failed"],
      ["https://example.com/a|b", "repo_resolution_failed"],
      ["https://example.com/a&b", "repo_resolution_failed"],
      ["https://example.com/a>b", "repo_resolution_failed"],
      [`git@example.com:r.git;touch ${m()}`, "repo_resolution_failed"],
      [`git@-oProxyCommand=touch ${m()}:r.git`, "repo_resolution_failed"],
      ["git@-oProxyCommand:r.git", "repo_resolution_failed"],
      ["ssh://-oProxyCommand=touch%20x/r.git", "repo_resolution_failed"],
      ["https://-x.example/r.git", "repo_resolution_failed"],
      ["https://alice:secret@example.com/r.git", "repo_resolution_failed"],
      ["ftp://example.com/r.git", "repo_resolution_failed"],
      ["javascript://example.com/%0Aalert(1)", "repo_resolution_failed"],
      ["file:///etc", "repo_resolution_failed"],
      ["file:///nonexistent/repo", "repo_resolution_failed"],
      ["/etc/passwd", "repo_resolution_failed"],
      ["../../../../../../..", "repo_resolution_failed"],
      [`https://example.com/${"a".repeat(3000)}.git`, "repo_resolution_failed"],
      ["https://example.com/a\nb.git", "repo_resolution_failed"],
      ["https://example.com/a\u001bb.git", "repo_resolution_failed"],
      [" https://example.com/r.git", "repo_resolution_failed"],
      ["", "repo_resolution_failed"],
      // Not local: a path or file:// URL on this machine is out of a remote sandbox's reach.
      ["REPO", "repo_resolution_failed", ["--provider", "docker"]],
      ["file://REPO", "repo_resolution_failed", ["--provider", "docker"]],
      ["REPO", "repo_resolution_failed", ["--provider", "cloudflare"]],
    ];
    await each(cases, async ([value, reason, extra]) => {
      const v = value.replace("REPO", repo);
      const r = await cli(["launch", "hostile", `--repo=${v}`, ...(extra ?? []), "--json"]);
      expect(r.code, `${v}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.json().reason_code, v).toBe(reason);
      record({
        kind: "input",
        surface: `launch --repo${extra ? ` (${extra.join(" ")})` : ""}`,
        input: show(v.replace(root, "$TMP")),
        reason_code: r.json().reason_code,
        outcome: "refused (exit 1), nothing ran",
      });
    });
    await nothingRan();
  });

  it("--ref: options, whitespace, control characters, over-long", async () => {
    const cases = ["--output=/tmp/x", "-b", "a b", "main\u0007", "main\n", "", "r".repeat(300)];
    await each(cases, async (ref) => {
      const r = await cli(["launch", "hostile", `--repo=${repo}`, `--ref=${ref}`, "--json"]);
      expect(r.code, `${ref}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.json().reason_code, ref).toBe("ref_not_found");
      record({
        kind: "input",
        surface: "launch --ref",
        input: show(ref),
        reason_code: r.json().reason_code,
        outcome: "refused (exit 1), nothing ran",
      });
    });
    await nothingRan();
  });

  it("sandbox names: the full table, on every command that takes one", async () => {
    const bad = [
      "",
      "-x",
      "--help-me",
      "UPPER",
      "a b",
      "a/b",
      "../x",
      "..",
      ".",
      "a_b",
      "a.b",
      "café",
      "ｆｕｌｌ",
      "a\nb",
      "x;rm -rf ~",
      "$(touch m)",
      "a".repeat(51),
    ];
    // Options first and the name after `--`, so even "-x" reaches the name check.
    const commands: [string, (n: string) => string[]][] = [
      ["launch", (n) => ["launch", "--json", `--repo=${repo}`, "--", n]],
      ["status", (n) => ["status", "--json", "--", n]],
      ["open", (n) => ["open", "--json", "--print", "--", n]],
      ["task", (n) => ["task", "--json", "--", n, "do something"]],
      ["diff", (n) => ["diff", "--json", "--", n]],
      ["export", (n) => ["export", "--json", "--patch", join(root, "x.patch"), "--", n]],
      ["checkpoint", (n) => ["checkpoint", "--json", "--", n]],
      ["teardown", (n) => ["teardown", "--json", "--force", "--", n]],
      ["logs", (n) => ["logs", "--json", "--", n]],
    ];
    const cases = commands.flatMap(([cmd, args]) =>
      // Every name on launch; a representative few on the other commands.
      (cmd === "launch" ? bad : ["../x", "-x", "a".repeat(51), "UPPER", ""]).map(
        (n) => [cmd, args(n), n] as const,
      ),
    );
    await each(cases, async ([cmd, args, n]) => {
      const r = await cli(args);
      expect(r.code, `${cmd} '${n}': ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.json().reason_code, `${cmd} '${n}'`).toBe("name_invalid");
      record({
        kind: "input",
        surface: `${cmd} <name>`,
        input: show(n) || "(empty)",
        reason_code: r.json().reason_code,
        outcome: "refused (exit 1), nothing ran",
      });
    });
    await nothingRan();
  });

  it("branch names git would refuse, or outside refs/heads (export --branch, github.branch_prefix)", async () => {
    const bad = [
      "refs/heads/x",
      "refs/tags/v1",
      "refs/remotes/origin/main",
      "HEAD",
      "@",
      "-x",
      "--force",
      "a..b",
      "x.lock",
      "a/x.lock/b",
      "a b",
      "x~1",
      "x^",
      "a:b",
      "a?b",
      "a*b",
      "a[b",
      "a\\b",
      ".hidden",
      "a/.x",
      "a//b",
      "/a",
      "a/",
      "a.",
      "a@{1}",
      "a\u0007b",
      "b".repeat(201),
      "",
    ];
    await each(bad, async (branch) => {
      const r = await cli(["export", "target", `--branch=${branch}`, "--json"]);
      expect(r.code, `${branch}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.json().reason_code, branch).toBe("branch_invalid");
      record({
        kind: "input",
        surface: "export --branch",
        input: show(branch) || "(empty)",
        reason_code: r.json().reason_code,
        outcome: "refused (exit 1), nothing ran",
      });
    });
    for (const prefix of ["a..b", "x.lock"]) {
      const r = await cli(["launch", "fresh", `--repo=${repo}`, "--json"], root, {
        ALPINE_GITHUB_BRANCH_PREFIX: prefix,
      });
      expect(r.code, `${prefix}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.json().reason_code, prefix).toBe("branch_invalid");
      record({
        kind: "input",
        surface: "github.branch_prefix (launch)",
        input: prefix,
        reason_code: r.json().reason_code,
        outcome: "refused (exit 1), nothing created",
      });
    }
    await nothingRan();
  });

  it("configuration: YAML bombs, deep nesting, huge files, duplicate and unknown keys, bad values", async () => {
    const laughs = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
    for (let i = 1; i < 10; i++) {
      const n = String.fromCharCode(97 + i);
      const prev = String.fromCharCode(96 + i);
      laughs.push(`${n}: &${n} [${Array(9).fill(`*${prev}`).join(", ")}]`);
    }
    const cases: [string, string, NodeJS.ProcessEnv?][] = [
      ["billion laughs (alias bomb)", laughs.join("\n")],
      [
        "merge-key alias bomb",
        `base: &b {x: 1}\n${Array.from({ length: 200 }, (_, i) => `k${i}: {<<: *b}`).join("\n")}`,
      ],
      ["100 000 nested lists", `opencode:\n  config: ${"[".repeat(100_000)}${"]".repeat(100_000)}`],
      ["a 300 KiB file", `# ${"x".repeat(300 * 1024)}\n`],
      ["duplicate keys", "sandbox:\n  provider: local\nsandbox:\n  provider: docker\n"],
      ["an unknown key", "sandbox:\n  no_such_key: 1\n"],
      ["a JavaScript type tag", "sandbox:\n  provider: !!js/function 'function(){}'\n"],
      ["a wrong type", "sandbox:\n  auto_teardown: [yes]\n"],
      ["a negative retention", "sandbox:\n  completed_retention_minutes: -1\n"],
      ["a branch prefix git refuses", "github:\n  branch_prefix: '-x'\n"],
      ["not YAML", "sandbox: [unclosed\n"],
      ["an ALPINE_* variable with a bad value", "", { ALPINE_SANDBOX_AUTO_TEARDOWN: "perhaps" }],
    ];
    await each(cases, async ([what, text, extraEnv]) => {
      const cwd = mkdtempSync(join(root, "cfg-"));
      if (text) writeFileSync(join(cwd, "alpine.yaml"), text);
      for (const args of [
        ["config", "show", "--json"],
        ["launch", "cfg", `--repo=${repo}`, "--json"],
      ]) {
        const r = await cli(args, cwd, extraEnv);
        expect(r.code, `${what}: ${r.stdout}${r.stderr}`).toBe(1);
        expect(r.json().reason_code, what).toBe("config_invalid");
      }
      record({
        kind: "input",
        surface: "alpine.yaml / ALPINE_*",
        input: what,
        reason_code: "config_invalid",
        outcome: "refused (exit 1) by every command, nothing ran",
      });
    });
    await nothingRan();
  });
});
