import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  AlpineError,
  assertRepoReachable,
  ConfigSchema,
  DEFAULT_CONFIG,
  imageSandboxdConfig,
  PROVIDER_KINDS,
  PROVIDERS,
  ProviderKindSchema,
  requireHandle,
  sandboxdApi,
  sandboxdStartConfig,
} from "../src/index.ts";

function reasonOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(AlpineError);
    return (err as AlpineError).reason;
  }
}

describe("the provider kinds", () => {
  it("are the kinds the schemas accept, and nothing else", () => {
    expect(ProviderKindSchema.options).toEqual(PROVIDER_KINDS);
    for (const kind of PROVIDER_KINDS)
      expect(ConfigSchema.parse({ sandbox: { provider: kind } }).sandbox.provider).toBe(kind);
    expect(ConfigSchema.safeParse({ sandbox: { provider: "podman" } }).success).toBe(false);
    expect(DEFAULT_CONFIG.sandbox.provider).toBe("local");
  });

  it("are described in docs/providers.md exactly as their descriptors say", () => {
    const doc = readFileSync(join(import.meta.dirname, "../../../docs/providers.md"), "utf8");
    const section = doc.split("## Capabilities")[1]?.split("\n## ")[0] ?? "";
    const rows = section.split("\n").filter((l) => l.startsWith("| `"));
    const yesNo = (b: boolean) => (b ? "yes" : "no");
    const expected = PROVIDER_KINDS.map((kind) => {
      const d = PROVIDERS[kind];
      const runsIn = d.runs_in === "cli" ? "the CLI's process" : "the control plane";
      const cells = [`\`${kind}\``, runsIn, d.isolation, yesNo(d.host_paths.readable)];
      cells.push(yesNo(d.persistent_workspace), yesNo(d.needs_image));
      return `| ${cells.join(" | ")} |`;
    });
    expect(rows).toEqual(expected);
  });

  it("refuse a repository path on this machine exactly where sandboxd cannot read it", () => {
    for (const kind of PROVIDER_KINDS) {
      const refused = reasonOf(() => assertRepoReachable(kind, "/home/me/repo"));
      expect(refused).toBe(PROVIDERS[kind].host_paths.readable ? null : "repo_resolution_failed");
      expect(reasonOf(() => assertRepoReachable(kind, "https://example.com/r.git"))).toBeNull();
      expect(reasonOf(() => assertRepoReachable(kind, undefined))).toBeNull();
    }
  });
});

describe("sandboxd's start config", () => {
  const sandbox = { sandbox_id: "sbx_1", name: "fix", config: DEFAULT_CONFIG };
  const token = "t".repeat(32);

  it("is one sandboxd accepts, laid out under the runtime's dir, with credentials only when given", () => {
    const host = sandboxdStartConfig({
      sandbox,
      token,
      listen: { host: "127.0.0.1", port: 0 },
      root: "/home/me/.alpine/sandboxes/sbx_1/",
      isolation: "bubblewrap",
      opencode_bin: "/usr/bin/opencode",
      extra: { repo_cache_dir: "/home/me/.alpine/cache/repos" },
    });
    const parsed = sandboxdApi.SandboxdConfigSchema.parse(host);
    expect(parsed).toMatchObject({
      sandbox_id: "sbx_1",
      name: "fix",
      token,
      workspace_dir: "/home/me/.alpine/sandboxes/sbx_1/workspace",
      log_file: "/home/me/.alpine/sandboxes/sbx_1/logs/sandboxd.log",
      checkpoint_dir: "/home/me/.alpine/sandboxes/sbx_1/checkpoints",
      isolation: "bubblewrap",
      repo_cache_dir: "/home/me/.alpine/cache/repos",
      branch_prefix: DEFAULT_CONFIG.github.branch_prefix,
    });
    expect(parsed.opencode).not.toHaveProperty("auth");

    const auth = { anthropic: { type: "api", key: "k" } };
    const image = imageSandboxdConfig({ sandbox, token, listen: { host: "0.0.0.0", port: 7000 }, auth });
    expect(sandboxdApi.SandboxdConfigSchema.parse(image)).toMatchObject({
      workspace_dir: "/sandbox/workspace",
      opencode_bin: "/opt/alpine/bin/opencode",
      isolation: "none",
      port: 7000,
      opencode: { auth },
    });
    // An image with bubblewrap (the docker provider reads its label): OpenCode confined inside the container.
    const confined = imageSandboxdConfig({
      sandbox,
      token,
      listen: { host: "0.0.0.0", port: 7000 },
      isolation: "bubblewrap",
    });
    expect(sandboxdApi.SandboxdConfigSchema.parse(confined).isolation).toBe("bubblewrap");
  });
});

describe("requireHandle", () => {
  it("returns a handle that has its fields and names the ones a broken one lacks", () => {
    const ok = requireHandle<{ dir: string }>("local", { dir: "/x", pid: 1 }, ["dir"]);
    expect(ok.dir).toBe("/x");
    try {
      requireHandle<{ container: string; volume: string }>("docker", { container: "c", volume: 3 }, [
        "container",
        "volume",
      ]);
      expect.unreachable();
    } catch (err) {
      expect((err as AlpineError).reason).toBe("internal_error");
      expect((err as AlpineError).details).toEqual({ missing: ["volume"] });
    }
  });
});
