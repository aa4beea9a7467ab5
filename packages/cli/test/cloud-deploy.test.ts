import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, runCli } from "../../../test/helpers/cli.ts";
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
