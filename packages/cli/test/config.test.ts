import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AlpineError } from "@alpine/core";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config-loader.ts";

function setup(files: Record<string, string>) {
  const root = mkdtempSync(join(tmpdir(), "alpine-config-"));
  const cwd = join(root, "project");
  const xdg = join(root, "xdg");
  mkdirSync(cwd, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    const path = name === "user" ? join(xdg, "alpine", "config.yaml") : join(cwd, name);
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, text);
  }
  return { cwd, env: { XDG_CONFIG_HOME: xdg } as NodeJS.ProcessEnv };
}

function configError(fn: () => unknown): AlpineError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AlpineError);
    expect((err as AlpineError).reason).toBe("config_invalid");
    return err as AlpineError;
  }
  throw new Error("expected config_invalid");
}

describe("config", () => {
  it("a partial section keeps the defaults of the keys it omits (regression: the seed zeroed auto_teardown)", () => {
    const { cwd, env } = setup({ "alpine.yaml": "sandbox:\n  image_profile: default\n" });
    const { config, sources } = loadConfig({ cwd, env });
    expect(config.sandbox.auto_teardown).toBe(true);
    expect(config.sandbox.completed_retention_minutes).toBe(60);
    expect(config.sandbox.image_profile).toBe("default");
    expect(sources["sandbox.image_profile"]).toBe(join(cwd, "alpine.yaml"));
    expect(sources["sandbox.auto_teardown"]).toBe("default");
  });

  it("layers: defaults < user file < alpine.yaml < ALPINE_* env, deep-merged, with sources", () => {
    const { cwd, env } = setup({
      user: "github:\n  branch_prefix: user\nsandbox:\n  completed_retention_minutes: 5\n",
      "alpine.yaml": "github:\n  require_auth: false\nsandbox:\n  image_profiles:\n    fast: img-fast\n",
    });
    const { config, sources } = loadConfig({
      cwd,
      env: {
        ...env,
        ALPINE_SANDBOX_COMPLETED_RETENTION_MINUTES: "7",
        ALPINE_OPENCODE_AUTH_PROVIDERS: "openai,anthropic",
      },
    });
    expect(config.github).toEqual({
      branch_prefix: "user",
      require_auth: false,
      api_url: "https://api.github.com",
    });
    expect(config.sandbox.completed_retention_minutes).toBe(7);
    expect(config.sandbox.image_profiles).toEqual({ default: "opencode-default", fast: "img-fast" });
    expect(config.opencode.auth_providers).toEqual(["openai", "anthropic"]);
    expect(sources["github.branch_prefix"]).toMatch(/xdg\/alpine\/config\.yaml$/);
    expect(sources["sandbox.completed_retention_minutes"]).toBe(
      "env ALPINE_SANDBOX_COMPLETED_RETENTION_MINUTES",
    );
  });

  it("--config replaces ./alpine.yaml", () => {
    const { cwd, env } = setup({
      "alpine.yaml": "sandbox:\n  isolation: none\n",
      "other.yaml": "sandbox:\n  auto_teardown: false\n",
    });
    const { config, files } = loadConfig({ cwd, env, configPath: "other.yaml" });
    expect(config.sandbox.isolation).toBe("auto");
    expect(config.sandbox.auto_teardown).toBe(false);
    expect(files).toEqual([join(cwd, "other.yaml")]);
  });

  it("an unknown key names the file, the key path and what is allowed", () => {
    const { cwd, env } = setup({ "alpine.yaml": "sandbox:\n  auto_tear_down: true\n" });
    const err = configError(() => loadConfig({ cwd, env }));
    expect(err.message).toContain(join(cwd, "alpine.yaml"));
    expect(err.message).toContain("auto_tear_down");
    expect(err.details.allowed).toContain("auto_teardown");
  });

  it("an unknown section is refused", () => {
    const { cwd, env } = setup({ "alpine.yaml": "sandboxes:\n  provider: local\n" });
    const err = configError(() => loadConfig({ cwd, env }));
    expect(err.details.allowed).toContain("sandbox");
  });

  it("a wrong type names the key path and the allowed values", () => {
    const { cwd, env } = setup({ "alpine.yaml": "sandbox:\n  provider: kubernetes\n" });
    const err = configError(() => loadConfig({ cwd, env }));
    expect(err.details.key).toBe("sandbox.provider");
    expect(err.message).toMatch(/local.*docker.*cloudflare/);
    const { cwd: cwd2, env: env2 } = setup({ "alpine.yaml": "sandbox:\n  auto_teardown: 'yes'\n" });
    expect(configError(() => loadConfig({ cwd: cwd2, env: env2 })).details.key).toBe("sandbox.auto_teardown");
  });

  it("broken YAML names the file and line", () => {
    const { cwd, env } = setup({ "alpine.yaml": "sandbox:\n  provider: [local\n" });
    const err = configError(() => loadConfig({ cwd, env }));
    expect(err.message).toContain("alpine.yaml");
    expect(err.message).toMatch(/invalid YAML/);
  });

  it("a bad env value names the variable", () => {
    const { cwd, env } = setup({});
    const err = configError(() =>
      loadConfig({ cwd, env: { ...env, ALPINE_SANDBOX_AUTO_TEARDOWN: "maybe" } }),
    );
    expect(err.message).toContain("ALPINE_SANDBOX_AUTO_TEARDOWN");
  });

  it("YAML alias bombs are refused", () => {
    // Under opencode.config, which takes any mapping: the schema alone would accept the
    // expanded document, so only the alias limit of config-loader.ts refuses it.
    const bomb = [
      "opencode:",
      "  config:",
      '    a: &a ["x","x","x","x","x","x","x","x","x"]',
      "    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]",
      "    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]",
      "    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]",
      "    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]",
      "    f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]",
    ].join("\n");
    const { cwd, env } = setup({ "alpine.yaml": bomb });
    const err = configError(() => loadConfig({ cwd, env }));
    expect(err.details).toMatchObject({ key: "(yaml)", allowed: "YAML without excessive aliases" });
    expect(err.message).toMatch(/alias/i);
  });

  it("a few aliases in an accepted key are fine", () => {
    const yaml = ["opencode:", "  config:", "    base: &base { x: 1 }", "    copy: *base"].join("\n");
    const { cwd, env } = setup({ "alpine.yaml": yaml });
    expect(loadConfig({ cwd, env }).config.opencode.config).toEqual({ base: { x: 1 }, copy: { x: 1 } });
  });

  it("a huge config file is refused", () => {
    const { cwd, env } = setup({ "alpine.yaml": `# ${"x".repeat(300 * 1024)}\n` });
    expect(configError(() => loadConfig({ cwd, env })).message).toMatch(/larger than/);
  });
});
