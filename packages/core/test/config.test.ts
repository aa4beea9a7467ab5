import { describe, expect, it } from "vitest";
import {
  CONFIG_KEYS,
  type ConfigLayer,
  ConfigSchema,
  DEFAULT_CONFIG,
  deepMerge,
  envLayer,
  envNameFor,
  resolveConfig,
} from "../src/config.ts";
import { AlpineError } from "../src/errors.ts";

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

const file = (values: Record<string, unknown>, source = "/home/u/alpine.yaml"): ConfigLayer => ({
  source,
  values,
});

describe("sandbox.egress", () => {
  it("is open, or an allow-list of hosts, *.domains and host:ports", () => {
    expect(ConfigSchema.parse({ sandbox: { egress: "open" } }).sandbox.egress).toBe("open");
    const allow = ["example.com", "*.example.org", "mirror.internal:8443"];
    expect(ConfigSchema.parse({ sandbox: { egress: { allow } } }).sandbox.egress).toEqual({ allow });
    for (const bad of ["http://example.com", "exa mple.com", "*", "closed"]) {
      const value = bad === "closed" ? bad : { allow: [bad] };
      expect(() => ConfigSchema.parse({ sandbox: { egress: value } }), bad).toThrow();
    }
  });

  it("is set whole from ALPINE_SANDBOX_EGRESS (open, or JSON)", () => {
    expect(envLayer({ ALPINE_SANDBOX_EGRESS: "open" }).values).toEqual({ sandbox: { egress: "open" } });
    expect(envLayer({ ALPINE_SANDBOX_EGRESS: '{"allow":["a.example"]}' }).values).toEqual({
      sandbox: { egress: { allow: ["a.example"] } },
    });
  });
});

describe("defaults and keys", () => {
  it("has the documented defaults", () => {
    expect(DEFAULT_CONFIG.sandbox).toEqual({
      provider: "local",
      image_profile: "default",
      image_profiles: { default: "opencode-default" },
      isolation: "auto",
      read_only_paths: [],
      auto_teardown: true,
      completed_retention_minutes: 60,
      suspend_after_minutes: 30,
      warm_pool: 0,
      egress: { allow: [] },
      budget: {},
    });
    expect(DEFAULT_CONFIG.docker).toEqual({ network: "bridge" });
    expect(DEFAULT_CONFIG.durability).toEqual({
      store: "local",
      checkpoint_prefix: "sandboxes",
      keep_checkpoints: 5,
    });
    expect(DEFAULT_CONFIG.github).toEqual({
      branch_prefix: "alpine",
      require_auth: true,
      api_url: "https://api.github.com",
    });
    expect(DEFAULT_CONFIG.opencode).toEqual({ auth_providers: ["openai"], config: {} });
    expect(DEFAULT_CONFIG.repo).toEqual({});
  });

  it("lists every settable key as section.key", () => {
    expect(CONFIG_KEYS).toContain("repo.default");
    expect(CONFIG_KEYS).toContain("sandbox.auto_teardown");
    expect(CONFIG_KEYS).toContain("opencode.config");
    expect(CONFIG_KEYS).toContain("docker.memory");
    expect(CONFIG_KEYS.every((k) => /^[a-z]+\.[a-z_]+$/.test(k))).toBe(true);
    expect(new Set(CONFIG_KEYS).size).toBe(CONFIG_KEYS.length);
  });

  it("names the environment variable of a key", () => {
    expect(envNameFor("sandbox.auto_teardown")).toBe("ALPINE_SANDBOX_AUTO_TEARDOWN");
    expect(envNameFor("repo.default")).toBe("ALPINE_REPO_DEFAULT");
  });

  it("keeps the defaults of the keys a partial section leaves out", () => {
    const parsed = ConfigSchema.parse({ sandbox: { warm_pool: 2 } });
    expect(parsed.sandbox.warm_pool).toBe(2);
    expect(parsed.sandbox.provider).toBe("local");
    expect(parsed.github.branch_prefix).toBe("alpine");
  });
});

describe("deepMerge", () => {
  it("merges objects key by key and replaces everything else", () => {
    const base = { a: { x: 1, y: { z: 2 } }, list: [1, 2], s: "a" };
    const over = { a: { y: { w: 3 } }, list: [9], s: "b", n: null };
    expect(deepMerge(base, over)).toEqual({ a: { x: 1, y: { z: 2, w: 3 } }, list: [9], s: "b", n: null });
    expect(base).toEqual({ a: { x: 1, y: { z: 2 } }, list: [1, 2], s: "a" }); // not mutated
  });

  it("replaces an object with a non-object and the other way round", () => {
    expect(deepMerge({ a: { x: 1 } }, { a: 5 })).toEqual({ a: 5 });
    expect(deepMerge({ a: 5 }, { a: { x: 1 } })).toEqual({ a: { x: 1 } });
    expect(deepMerge({ a: { x: 1 } }, { a: [1] })).toEqual({ a: [1] });
  });
});

describe("envLayer", () => {
  it("reads known ALPINE_* variables by the type of their default", () => {
    const layer = envLayer({
      ALPINE_SANDBOX_AUTO_TEARDOWN: "false",
      ALPINE_SANDBOX_WARM_POOL: " 3 ",
      ALPINE_SANDBOX_PROVIDER: "docker",
      ALPINE_OPENCODE_AUTH_PROVIDERS: "openai, anthropic,,",
      ALPINE_SANDBOX_IMAGE_PROFILES: '{"big":"img-big"}',
      ALPINE_GITHUB_REQUIRE_AUTH: "true",
      ALPINE_DOCKER_CPUS: "1.5",
      ALPINE_UNKNOWN_KEY: "x",
      ALPINE_REPO_DEFAULT: "",
      PATH: "/bin",
    });
    expect(layer.source).toBe("env");
    expect(layer.values).toEqual({
      sandbox: { auto_teardown: false, warm_pool: 3, provider: "docker", image_profiles: { big: "img-big" } },
      opencode: { auth_providers: ["openai", "anthropic"] },
      github: { require_auth: true },
      docker: { cpus: "1.5" }, // no default to type it: kept as the string, which the schema refuses
    });
    expect(layer.keySources).toEqual({
      "sandbox.auto_teardown": "env ALPINE_SANDBOX_AUTO_TEARDOWN",
      "sandbox.warm_pool": "env ALPINE_SANDBOX_WARM_POOL",
      "sandbox.provider": "env ALPINE_SANDBOX_PROVIDER",
      "sandbox.image_profiles": "env ALPINE_SANDBOX_IMAGE_PROFILES",
      "opencode.auth_providers": "env ALPINE_OPENCODE_AUTH_PROVIDERS",
      "github.require_auth": "env ALPINE_GITHUB_REQUIRE_AUTH",
      "docker.cpus": "env ALPINE_DOCKER_CPUS",
    });
  });

  it("reads a JSON array for an array key, and keeps unparseable values raw", () => {
    const layer = envLayer({
      ALPINE_OPENCODE_AUTH_PROVIDERS: '["a","b"]',
      ALPINE_OPENCODE_CONFIG: "{not json",
      ALPINE_SANDBOX_AUTO_TEARDOWN: "yes",
      ALPINE_SANDBOX_WARM_POOL: "two",
    });
    expect(layer.values).toEqual({
      opencode: { auth_providers: ["a", "b"], config: "{not json" },
      sandbox: { auto_teardown: "yes", warm_pool: "two" },
    });
  });
});

describe("resolveConfig", () => {
  it("gives the defaults, each from 'default', with no layers", () => {
    const { config, sources } = resolveConfig([]);
    expect(config).toEqual(DEFAULT_CONFIG);
    expect(Object.keys(sources).sort()).toEqual([...CONFIG_KEYS].sort());
    expect(new Set(Object.values(sources))).toEqual(new Set(["default"]));
  });

  it("merges layers in order over the defaults and records where each key came from", () => {
    const { config, sources } = resolveConfig([
      file({ sandbox: { warm_pool: 1, isolation: "none" }, github: { branch_prefix: "bot" } }),
      file({ sandbox: { warm_pool: 4 } }, "./alpine.yaml"),
      envLayer({ ALPINE_SANDBOX_AUTO_TEARDOWN: "false" }),
    ]);
    expect(config.sandbox.warm_pool).toBe(4);
    expect(config.sandbox.isolation).toBe("none");
    expect(config.sandbox.auto_teardown).toBe(false);
    expect(config.sandbox.provider).toBe("local"); // untouched default kept
    expect(config.github).toEqual({
      branch_prefix: "bot",
      require_auth: true,
      api_url: "https://api.github.com",
    });
    expect(sources["sandbox.warm_pool"]).toBe("./alpine.yaml");
    expect(sources["sandbox.isolation"]).toBe("/home/u/alpine.yaml");
    expect(sources["github.branch_prefix"]).toBe("/home/u/alpine.yaml");
    expect(sources["sandbox.auto_teardown"]).toBe("env ALPINE_SANDBOX_AUTO_TEARDOWN");
    expect(sources["sandbox.provider"]).toBe("default");
  });

  it("adds image profiles to the built-in ones and replaces arrays", () => {
    const { config, sources } = resolveConfig([
      file({ sandbox: { image_profiles: { big: "img-big" } }, opencode: { auth_providers: ["x"] } }),
    ]);
    expect(config.sandbox.image_profiles).toEqual({ default: "opencode-default", big: "img-big" });
    expect(config.opencode.auth_providers).toEqual(["x"]);
    expect(sources["sandbox.image_profiles"]).toBe("/home/u/alpine.yaml");
  });

  it("lets an env variable override a file", () => {
    const { config } = resolveConfig([
      file({ sandbox: { provider: "docker" } }),
      envLayer({ ALPINE_SANDBOX_PROVIDER: "local" }),
    ]);
    expect(config.sandbox.provider).toBe("local");
  });

  it("refuses an env value of the wrong type, naming the variable", () => {
    const err = configError(() => resolveConfig([envLayer({ ALPINE_SANDBOX_AUTO_TEARDOWN: "yes" })]));
    expect(err.message).toMatch(/^env ALPINE_SANDBOX_AUTO_TEARDOWN: sandbox\.auto_teardown: /);
    expect(err.details.source).toBe("env ALPINE_SANDBOX_AUTO_TEARDOWN");
    expect(err.details.key).toBe("sandbox.auto_teardown");
  });

  it("refuses a number env variable that is not a number", () => {
    const err = configError(() => resolveConfig([envLayer({ ALPINE_SANDBOX_WARM_POOL: "lots" })]));
    expect(err.details.source).toBe("env ALPINE_SANDBOX_WARM_POOL");
  });

  it("refuses an out-of-range value", () => {
    const err = configError(() => resolveConfig([envLayer({ ALPINE_SANDBOX_WARM_POOL: "17" })]));
    expect(err.details.key).toBe("sandbox.warm_pool");
    expect(err.details.issues).toEqual([{ path: "sandbox.warm_pool", message: expect.any(String) }]);
  });

  it("refuses a value outside an enum, listing the allowed ones", () => {
    const err = configError(() => resolveConfig([file({ sandbox: { provider: "vmware" } })]));
    expect(err.message).toMatch(/^\/home\/u\/alpine\.yaml: sandbox\.provider: expected one of "local"/);
    expect(err.details.allowed).toMatch(/^expected one of "local", /);
  });

  it("refuses an unknown key, listing the section's keys", () => {
    const err = configError(() => resolveConfig([file({ docker: { network: "host", gpu: true } })]));
    expect(err.message).toBe("/home/u/alpine.yaml: docker: unknown key 'gpu'");
    expect(err.details.key).toBe("docker");
    expect(err.details.allowed).toBe("keys: network, cpus, memory");
  });

  it("refuses several unknown keys in one message", () => {
    const err = configError(() => resolveConfig([file({ github: { a: 1, b: 2 } })]));
    expect(err.message).toBe("/home/u/alpine.yaml: github: unknown keys 'a', 'b'");
  });

  it("refuses an unknown section, listing the sections", () => {
    const err = configError(() => resolveConfig([file({ sandbx: {} })]));
    expect(err.details.key).toBe("(top level)");
    expect(err.details.allowed).toBe(
      "sections: repo, sandbox, docker, durability, github, opencode, notify, environment",
    );
  });

  it("refuses a file that is not a mapping", () => {
    for (const values of [["a"], "text", null]) {
      const err = configError(() =>
        resolveConfig([{ source: "bad.yaml", values: values as unknown as Record<string, unknown> }]),
      );
      expect(err.message).toBe("bad.yaml: the file must hold a mapping of sections");
      expect(err.details.key).toBe("(top level)");
    }
  });

  it("checks formats: model id, branch prefix, memory size, URLs", () => {
    expect(configError(() => resolveConfig([file({ opencode: { model: "gpt-5" } })])).details.key).toBe(
      "opencode.model",
    );
    expect(configError(() => resolveConfig([file({ github: { branch_prefix: "-x" } })])).details.key).toBe(
      "github.branch_prefix",
    );
    expect(configError(() => resolveConfig([file({ docker: { memory: "lots" } })])).message).toContain(
      "a size such as 512m or 4g",
    );
    expect(configError(() => resolveConfig([file({ github: { api_url: "nope" } })])).details.key).toBe(
      "github.api_url",
    );
    const ok = resolveConfig([
      file({
        opencode: { model: "openai/gpt-5" },
        docker: { memory: "4g", cpus: 2 },
        repo: { default: "." },
      }),
    ]);
    expect(ok.config.opencode.model).toBe("openai/gpt-5");
    expect(ok.config.docker).toEqual({ network: "bridge", memory: "4g", cpus: 2 });
    expect(ok.sources["repo.default"]).toBe("/home/u/alpine.yaml");
  });

  it("takes sandbox.read_only_paths as absolute or ~/ paths, from a file or a comma-separated variable", () => {
    expect(
      configError(() => resolveConfig([file({ sandbox: { read_only_paths: ["relative/dir"] } })])).message,
    ).toContain("an absolute path, or one starting with ~/");
    const env = envLayer({ ALPINE_SANDBOX_READ_ONLY_PATHS: "/opt/tools, ~/src/lib" });
    expect(resolveConfig([env]).config.sandbox.read_only_paths).toEqual(["/opt/tools", "~/src/lib"]);
  });

  it("names the first failing layer even when a later one is valid", () => {
    const err = configError(() =>
      resolveConfig([
        file({ sandbox: { isolation: "full" } }, "a.yaml"),
        file({ sandbox: { isolation: "none" } }, "b.yaml"),
      ]),
    );
    expect(err.details.source).toBe("a.yaml");
  });
});
