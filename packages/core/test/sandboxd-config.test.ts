import { describe, expect, it } from "vitest";
import {
  type AlpineConfig,
  DEFAULT_CONFIG,
  idleSuspendConfig,
  sandboxdApi,
  sandboxdStartConfig,
} from "../src/index.ts";

/** The start config every provider gives sandboxd, and sandboxd's own idle suspension. */

const config = (patch: { [K in keyof AlpineConfig]?: Partial<AlpineConfig[K]> }): AlpineConfig => {
  const c = structuredClone(DEFAULT_CONFIG) as AlpineConfig;
  for (const [section, values] of Object.entries(patch))
    Object.assign(c[section as keyof AlpineConfig], values);
  return c;
};

const start = (c: AlpineConfig, extra: Partial<Parameters<typeof sandboxdStartConfig>[0]> = {}) =>
  sandboxdStartConfig({
    sandbox: { sandbox_id: "sbx_1", name: "fix", config: c },
    token: "t".repeat(32),
    listen: { host: "127.0.0.1", port: 0 },
    root: "/var/alpine/sbx_1",
    isolation: "bubblewrap",
    opencode_bin: "/usr/bin/opencode",
    ...extra,
  });

describe("idleSuspendConfig (sandboxd suspends itself where the disk outlives it)", () => {
  it("is off when suspend_after_minutes is 0", () => {
    expect(idleSuspendConfig(config({ sandbox: { suspend_after_minutes: 0 } }))).toBeUndefined();
  });

  it("is the period in milliseconds, 30 minutes by default", () => {
    expect(idleSuspendConfig(DEFAULT_CONFIG)).toEqual({ after_ms: 30 * 60_000 });
    expect(idleSuspendConfig(config({ sandbox: { suspend_after_minutes: 2.5 } }))).toEqual({
      after_ms: 150_000,
    });
  });

  it("is never shorter than a second, however small the period", () => {
    expect(idleSuspendConfig(config({ sandbox: { suspend_after_minutes: 0.001 } }))).toEqual({
      after_ms: 1000,
    });
  });

  it("is a field sandboxd accepts", () => {
    const parsed = sandboxdApi.SandboxdConfigSchema.parse(
      start(DEFAULT_CONFIG, { extra: { idle_suspend: idleSuspendConfig(DEFAULT_CONFIG) } }),
    );
    expect(parsed.idle_suspend).toEqual({ after_ms: 30 * 60_000 });
  });
});

describe("sandboxdStartConfig", () => {
  it("gives OpenCode the model's provider and the auth providers, each once", () => {
    const c = config({ opencode: { model: "anthropic/claude-x", auth_providers: ["openai", "anthropic"] } });
    expect(start(c).opencode?.providers).toEqual(["anthropic", "openai"]);
    const noModel = config({ opencode: { model: undefined, auth_providers: ["openai"] } });
    expect(start(noModel).opencode?.providers).toEqual(["openai"]);
  });

  it("keys prepared environments by the image, or by the host's isolation when none is named", () => {
    expect(start(DEFAULT_CONFIG).prepared).toEqual({ image: "host+bubblewrap", key_files: null });
    expect(start(DEFAULT_CONFIG, { isolation: "none" }).prepared?.image).toBe("host");
    const named = start(DEFAULT_CONFIG, {
      sandbox: { sandbox_id: "sbx_1", name: "fix", config: DEFAULT_CONFIG, image: "alpine-sandbox:1" },
      preparedDir: "/var/alpine/environments",
    });
    expect(named.prepared).toEqual({
      dir: "/var/alpine/environments",
      image: "alpine-sandbox:1",
      key_files: null,
    });
  });

  it("carries repo secrets only when there are some", () => {
    expect(start(DEFAULT_CONFIG, { secrets: [] })).not.toHaveProperty("secrets");
    const secrets = [{ name: "NPM_TOKEN", value: "s3cret", agent: false }];
    expect(start(DEFAULT_CONFIG, { secrets }).secrets).toEqual(secrets);
  });

  it("fills the environment's layer with empty lists when the config names none", () => {
    expect(start(DEFAULT_CONFIG).environment).toEqual({ setup: [], start: [], env: {}, ports: [] });
  });
});
