import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, runCli } from "../../../test/helpers/cli.ts";
import { wranglerDryRun, wranglerRunner } from "../src/cloud/dry-run.ts";
import { parseJsonc } from "../src/cloud/wrangler-config.ts";
import { checkWranglerConfig } from "../src/commands/cloud-run.ts";

type WranglerConfig = Parameters<typeof checkWranglerConfig>[1];

const WORKER = join(ROOT, "packages", "worker");
const config = () => parseJsonc(readFileSync(join(WORKER, "wrangler.jsonc"), "utf8")) as WranglerConfig;

describe("alpine cloud deploy --dry-run (offline)", () => {
  it("checks wrangler.jsonc, assembles the image context and bundles the Worker without the network", async () => {
    const r = await runCli(["cloud", "deploy", "--dry-run", "--json"], {
      env: {
        ALPINE_HOME: mkdtempSync(join(tmpdir(), "alpine-deploy-")),
        ALPINE_CONTROL_PLANE_TOKEN: "0123456789abcdef0123",
        // No Docker, even on a machine that has one: with Docker the dry run builds the image,
        // whose base comes from a registry, and this test stays offline.
        DOCKER_HOST: "unix:///nonexistent/docker.sock",
      },
      timeoutMs: 120_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.json();
    expect(out).toMatchObject({ dry_run: true, ok: true, deployed: false, url: null });
    expect(out.checks.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining([
        "durable object SANDBOX",
        "profile default",
        "r2 bucket CHECKPOINTS",
        "worker bundle",
      ]),
    );
    expect(out.checks.every((c: { ok: boolean }) => c.ok)).toBe(true);
    // It says what it could not check offline.
    expect(out.not_checked.join("\n")).toMatch(/account|Docker/);
    expect(JSON.stringify(out)).not.toContain("0123456789abcdef0123");
  });

  it("without the control-plane token it is config_invalid, one JSON document naming the failed check", async () => {
    const r = await runCli(["cloud", "deploy", "--dry-run", "--json"], {
      env: { ALPINE_HOME: mkdtempSync(join(tmpdir(), "alpine-deploy-")) },
      timeoutMs: 120_000,
    });
    expect(r.code).toBe(1);
    const out = r.json();
    expect(out.reason_code).toBe("config_invalid");
    expect(out.details.failed).toEqual([expect.objectContaining({ name: "ALPINE_CONTROL_PLANE_TOKEN" })]);
  });

  it("the static checks catch a Durable Object without SQLite, a missing binding, a bad instance type", () => {
    const good = config();
    expect(checkWranglerConfig(WORKER, good).every((c) => c.ok)).toBe(true);
    const noSqlite = { ...good, migrations: [{ tag: "v1", new_classes: ["SandboxObject"] }] };
    expect(checkWranglerConfig(WORKER, noSqlite).find((c) => c.name === "durable object SANDBOX")?.ok).toBe(
      false,
    );
    const noR2 = { ...good, r2_buckets: [] };
    expect(checkWranglerConfig(WORKER, noR2).find((c) => c.name === "r2 bucket CHECKPOINTS")?.ok).toBe(false);
    const containers = good.containers!.map((c) => ({
      ...c,
      instance_type: "huge",
    }));
    expect(
      checkWranglerConfig(WORKER, { ...good, containers }).find((c) => c.name === "profile default")?.ok,
    ).toBe(false);
  });
});

describe("the dry run hands wrangler the containers block", () => {
  const dryRun = async (cfg: WranglerConfig) => {
    const base = mkdtempSync(join(tmpdir(), "alpine-dry-"));
    try {
      return await wranglerDryRun({
        dir: WORKER,
        config: cfg,
        env: {
          PATH: process.env.PATH,
          HOME: base,
          XDG_CONFIG_HOME: join(base, "cfg"),
          WRANGLER_LOG_PATH: join(base, "logs"),
          WRANGLER_SEND_METRICS: "false",
          CLOUDFLARE_CF_FETCH_ENABLED: "false",
          NO_COLOR: "1",
        },
        outdir: join(base, "bundle"),
        run: wranglerRunner(join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"), WORKER),
        // The images are built only where Docker answers; the block is validated either way.
        docker: false,
      });
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  };

  it("a container class that no Durable Object binds fails the dry run (wrangler's own check)", async () => {
    const good = config();
    // Passes alpine's static checks (every profile's class has its container); only wrangler sees it.
    const stray = {
      ...good,
      containers: [...good.containers!, { ...good.containers![0]!, class_name: "Stray" }],
    };
    expect(checkWranglerConfig(WORKER, stray).every((c) => c.ok)).toBe(true);
    const bad = await dryRun(stray);
    const bundle = bad.checks.find((c) => c.name === "worker bundle")!;
    expect(bundle.ok).toBe(false);
    expect(bundle.detail).toMatch(/Stray/);
    const ok = await dryRun(good);
    expect(
      ok.checks.every((c) => c.ok),
      JSON.stringify(ok.checks),
    ).toBe(true);
    expect(ok.checks[0]!.detail).toMatch(/containers block \(2 classes\) checked by wrangler/);
    expect(ok.notChecked.join("\n")).toMatch(/image build/);
  }, 240_000);
});
