import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VersionOutputSchema } from "@alpine/core";
import sandboxdPackage from "@alpine/sandboxd/package.json" with { type: "json" };
import { describe, expect, it } from "vitest";
import { runCli } from "../../../test/helpers/cli.ts";
import cliPackage from "../package.json" with { type: "json" };
import { flagSyntax, leafCommands } from "../src/commands/define.ts";
import { REGISTRY } from "../src/commands/registry.ts";

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

  it("config show gives the repo's environment in effect: devcontainer.json under alpine's section, each part's source, notices once", async () => {
    const { mkdirSync, writeFileSync } = await import("node:fs");
    const repo = home();
    mkdirSync(join(repo, ".git"));
    mkdirSync(join(repo, ".devcontainer"));
    mkdirSync(join(repo, "src"));
    writeFileSync(
      join(repo, ".devcontainer", "devcontainer.json"),
      [
        "{ // JSON with comments",
        '  "postCreateCommand": "npm ci",',
        '  "postStartCommand": ["node", "server.js"],',
        '  "forwardPorts": [3000],',
        '  "containerEnv": { "A": "dev", "B": "dev" },',
        '  "features": {}, "customizations": {},',
        "}",
      ].join("\n"),
    );
    writeFileSync(
      join(repo, "alpine.yaml"),
      ["environment:", '  setup: ["make deps"]', "  env: { B: config }", "  ports: [8080]"].join("\n"),
    );
    const env = { ALPINE_HOME: home(), ALPINE_CONFIG: join(repo, "alpine.yaml") };
    // From a subdirectory of the checkout: the devcontainer at its root is the one read.
    const r = await runCli(["config", "show", "--json"], { env, cwd: join(repo, "src") });
    expect(r.code, r.stderr).toBe(0);
    const shown = r.json().environment;
    expect(shown.devcontainer).toBe(join(repo, ".devcontainer", "devcontainer.json"));
    expect(shown.effective).toMatchObject({
      setup: ["make deps"],
      start: ["node server.js"],
      env: { A: "dev", B: "config" },
      ports: [3000, 8080],
      sources: { setup: "config", start: "devcontainer", env: "both", ports: "both" },
    });
    expect(shown.effective.notices).toEqual([
      ".devcontainer/devcontainer.json: not supported, ignored: features, customizations",
    ]);
    const human = await runCli(["config", "show"], { env, cwd: join(repo, "src") });
    expect(human.stdout).toMatch(/setup +make deps +from alpine config/);
    expect(human.stdout).toMatch(/start +node server\.js +from devcontainer\.json/);
    expect(human.stdout).toMatch(/env +A, B +from devcontainer\.json \+ alpine config/);
    expect(human.stdout.split("not supported, ignored").length).toBe(2);
    // Outside any checkout: alpine's section alone.
    const bare = await runCli(["config", "show", "--json"], { env: { ALPINE_HOME: home() }, cwd: home() });
    expect(bare.json().environment).toMatchObject({
      devcontainer: null,
      effective: { setup: [], notices: [] },
    });
  });

  it("env rm --all needs no key; without keys or --all it says what to pass", async () => {
    const env = { ALPINE_HOME: home() };
    const all = await runCli(["env", "rm", "--all", "--json"], { env });
    expect(all.code, all.stdout + all.stderr).toBe(0);
    expect(all.json()).toEqual({ removed: [] });
    const none = await runCli(["env", "rm", "--json"], { env });
    expect(none.code).toBe(1);
    expect(none.json()).toMatchObject({ reason_code: "usage_invalid" });
    expect(none.json().error).toContain("or pass --all");
  });

  it("every verb of the registry has --help with its summary and examples", async () => {
    const top = await runCli(["--help"]);
    expect(top.code).toBe(0);
    for (const entry of REGISTRY) expect(top.stdout).toContain(entry.name);
    const verbs = leafCommands(REGISTRY);
    expect(verbs.length).toBeGreaterThanOrEqual(17);
    for (const { path, command } of verbs) {
      const r = await runCli([...path.split(" "), "--help"]);
      expect(r.code, path).toBe(0);
      expect(r.stdout.replace(/\s+/g, " "), path).toContain(command.description ?? command.summary);
      expect(r.stdout, path).toContain("Examples:");
      for (const example of command.examples) expect(r.stdout, path).toContain(`  ${example}`);
      for (const flag of Object.entries(command.flags)) expect(r.stdout, path).toContain(flagSyntax(...flag));
    }
  });

  it("version prints alpine's, Node's and the pinned OpenCode's versions and the platform", async () => {
    const r = await runCli(["version", "--json"], { env: { ALPINE_HOME: home() } });
    expect(r.code).toBe(0);
    const body = VersionOutputSchema.parse(r.json());
    expect(body).toEqual({
      alpine: cliPackage.version,
      node: process.versions.node,
      opencode: sandboxdPackage.dependencies["opencode-ai"],
      platform: process.platform,
      arch: process.arch,
    });
    const text = await runCli(["version"], { env: { ALPINE_HOME: home() } });
    expect(text.stdout).toBe(
      `alpine ${body.alpine}\nnode ${body.node}\nopencode ${body.opencode}\nplatform ${body.platform}-${body.arch}\n`,
    );
    expect((await runCli(["-V"])).stdout).toBe(`${cliPackage.version}\n`);
  });

  it("declared flags reach the handler typed: a bad port is a usage error naming the flag", async () => {
    const r = await runCli(["cloud", "dev", "--port", "70000", "--json"], { env: { ALPINE_HOME: home() } });
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({
      reason_code: "usage_invalid",
      details: { code: "commander.invalidArgument" },
    });
    expect(r.json().error).toContain("--port <port>");
    const choice = await runCli(["launch", "x", "--provider", "moon", "--json"], {
      env: { ALPINE_HOME: home() },
    });
    expect(choice.json()).toMatchObject({ reason_code: "usage_invalid" });
    expect(choice.json().error).toContain("local, docker, cloudflare");
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
