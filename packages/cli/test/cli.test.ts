import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../../../test/helpers/cli.ts";

const home = () => mkdtempSync(join(tmpdir(), "alpine-cli-"));
const ERROR_KEYS = ["details", "error", "exit_code", "reason_code", "retryable"];

describe("alpine CLI contract", () => {
  it("list --json on an empty home prints []", async () => {
    const r = await runCli(["list", "--json"], { env: { ALPINE_HOME: home() } });
    expect(r.code).toBe(0);
    expect(r.json()).toEqual([]);
  });

  it("status of an unknown sandbox exits 1 with sandbox_not_found and every error key", async () => {
    const r = await runCli(["status", "nosuch", "--json"], { env: { ALPINE_HOME: home() } });
    expect(r.code).toBe(1);
    const body = r.json();
    expect(Object.keys(body).sort()).toEqual(ERROR_KEYS);
    expect(body).toMatchObject({ reason_code: "sandbox_not_found", exit_code: 1, retryable: false });
    expect(r.stderr).toBe("");
  });

  it("without --json an error is one readable line plus a hint on stderr, nothing on stdout", async () => {
    const r = await runCli(["status", "nosuch"], { env: { ALPINE_HOME: home() } });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^error: sandbox 'nosuch' not found\n {2}hint: .*\(sandbox_not_found\)\n$/);
  });

  const badNames = ["../x", "UPPER", "a b", "-x", "a".repeat(51), ""];
  const commands: string[][] = [
    ["status"],
    ["launch", "--repo", ".", "NAME"],
    ["open"],
    ["task", "NAME", "do it"],
    ["diff"],
    ["export"],
    ["checkpoint"],
    ["teardown"],
    ["logs"],
  ];
  for (const command of commands) {
    it(`${command[0]} validates names the same way (name_invalid)`, async () => {
      const h = home();
      for (const name of badNames) {
        const args = command.includes("NAME")
          ? command.map((a) => (a === "NAME" ? name : a))
          : [...command, name];
        // "-x" must reach the name check, not be taken for an option.
        const at = args.indexOf(name, 1);
        const argv = name.startsWith("-")
          ? [args[0]!, "--json", ...args.slice(1, at), "--", ...args.slice(at)]
          : [...args, "--json"];
        const r = await runCli(argv, { env: { ALPINE_HOME: h } });
        expect(r.code, `${argv.join(" ")}: ${r.stdout}${r.stderr}`).toBe(1);
        expect(r.json().reason_code, argv.join(" ")).toBe("name_invalid");
      }
    });
  }

  it("usage errors use the error contract too", async () => {
    const r = await runCli(["launch", "--json", "--bogus"], { env: { ALPINE_HOME: home() } });
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ reason_code: "usage_invalid", exit_code: 1 });
    const missing = await runCli(["status", "--json"], { env: { ALPINE_HOME: home() } });
    expect(missing.json().reason_code).toBe("usage_invalid");
  });

  it("an invalid config file fails with config_invalid naming the file", async () => {
    const dir = home();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(dir, "alpine.yaml"), "sandbox:\n  providr: local\n");
    const r = await runCli(["config", "show", "--json"], { env: { ALPINE_HOME: dir }, cwd: dir });
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ reason_code: "config_invalid", details: { key: "sandbox" } });
    expect(r.json().error).toContain(join(dir, "alpine.yaml"));
  });

  it("config show --json gives values and their sources", async () => {
    const r = await runCli(["config", "show", "--json"], {
      env: { ALPINE_HOME: home(), ALPINE_GITHUB_BRANCH_PREFIX: "bots" },
    });
    expect(r.code).toBe(0);
    const body = r.json();
    expect(body.config.github.branch_prefix).toBe("bots");
    expect(body.sources["github.branch_prefix"]).toBe("env ALPINE_GITHUB_BRANCH_PREFIX");
    expect(body.sources["sandbox.auto_teardown"]).toBe("default");
  });

  it("every command has --help with examples", async () => {
    const top = await runCli(["--help"]);
    expect(top.code).toBe(0);
    const names = [
      "launch",
      "list",
      "status",
      "open",
      "task",
      "diff",
      "export",
      "checkpoint",
      "teardown",
      "logs",
      "gc",
      "config",
      "doctor",
    ];
    for (const name of names) expect(top.stdout).toContain(name);
    for (const name of names.filter((n) => n !== "config")) {
      const r = await runCli([name, "--help"]);
      expect(r.code, name).toBe(0);
      expect(r.stdout, name).toContain("Examples:");
    }
    const sync = await runCli(["auth", "sync", "--help"]);
    expect(sync.stdout).toContain("Examples:");
  });

  it("launch without a repo for a new sandbox says how to fix it", async () => {
    const r = await runCli(["launch", "fresh", "--json"], { env: { ALPINE_HOME: home() } });
    expect(r.code).toBe(1);
    expect(r.json().reason_code).toBe("repo_resolution_failed");
  });

  it("hostile --repo values are refused before anything runs", async () => {
    const h = home();
    for (const repo of [
      "--upload-pack=touch /tmp/pwned",
      "ext::sh -c touch% /tmp/pwned",
      "-oProxyCommand=x",
      "https://x/$(id)",
      "a".repeat(3000),
    ]) {
      const r = await runCli(["launch", "evil", "--json", `--repo=${repo}`], { env: { ALPINE_HOME: h } });
      expect(r.code, repo).toBe(1);
      expect(r.json().reason_code, repo).toBe("repo_resolution_failed");
    }
    const list = await runCli(["list", "--json"], { env: { ALPINE_HOME: h } });
    expect(list.json()).toEqual([]);
  });

  it("doctor reports the tools it looked for", async () => {
    const r = await runCli(["doctor", "--json"], { env: { ALPINE_HOME: home() } });
    expect(r.code).toBe(0);
    const names = r.json().checks.map((c: { name: string }) => c.name);
    for (const n of ["node", "git", "opencode", "bwrap", "docker", "wrangler", "auth", "isolation"])
      expect(names).toContain(n);
  });
});
