import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAULT_STEPS } from "../../packages/core/src/faults.ts";
import { bundleHelper } from "../helpers/bundle.ts";
import { buildClis, CLI, ROOT, run } from "./harness.ts";

/**
 * The fault hook exists for the reliability tests only: their bundle honours
 * ALPINE_FAULT_AT, the production build (`npm ci` → packages/cli/dist) neither contains
 * nor honours it.
 */
let root: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "alpine-rel-hook-"));
  const alpineHome = join(root, "alpine-home");
  mkdirSync(alpineHome);
  env = { HOME: root, ALPINE_HOME: alpineHome, XDG_CONFIG_HOME: join(root, "config") };
  // A record without a runtime: `teardown` of it reaches teardown.lease_acquired and nothing heavier.
  const worker = await bundleHelper("test/reliability/db-worker.ts");
  execFileSync(process.execPath, [worker, "seed", join(alpineHome, "state.db"), "a", "b", "c"]);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const kill = { ALPINE_FAULT_AT: "teardown.lease_acquired", ALPINE_FAULT_ACTION: "kill" };

function bundleText(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d, { withFileTypes: true })) {
      if (f.isDirectory()) walk(join(d, f.name));
      else if (f.name.endsWith(".js")) out.push(readFileSync(join(d, f.name), "utf8"));
    }
  };
  walk(dir);
  return out.join("\n");
}

describe("the fault hook", () => {
  it("is honoured by the tests' bundle: it stops at the step (SIGKILL) and refuses unknown steps", async () => {
    const { faults } = await buildClis();
    const r = await run(["teardown", "a", "--json"], { bin: faults, env: { ...env, ...kill }, cwd: root });
    expect(r.stderr).toContain(`ALPINE_FAULT_REACHED teardown.lease_acquired`);
    expect(r.code).toBe(128); // killed by a signal
    const bad = await run(["teardown", "b", "--json"], {
      bin: faults,
      env: { ...env, ALPINE_FAULT_AT: "no.such.step" },
      cwd: root,
    });
    expect(bad.json()).toMatchObject({ reason_code: "usage_invalid", details: { known: [...FAULT_STEPS] } });
  });

  it("is absent from the production bundle, which ignores ALPINE_FAULT_*", async () => {
    // The shipped build (scripts/build.mjs, what `npm ci` makes) and the tests' copy of it.
    const dist = join(ROOT, "packages", "cli", "dist");
    if (!existsSync(join(dist, "alpine.js")))
      execFileSync(process.execPath, [join(ROOT, "scripts", "build.mjs")]);
    const { prod } = await buildClis();
    for (const text of [bundleText(dist), bundleText(join(prod, ".."))]) {
      expect(text.length).toBeGreaterThan(100_000);
      expect(text).not.toContain("ALPINE_FAULT_AT");
      expect(text).not.toContain("ALPINE_FAULT_REACHED");
    }
    for (const bin of [CLI, prod]) {
      const r = await run(["teardown", bin === CLI ? "b" : "c", "--json"], {
        bin,
        env: { ...env, ...kill },
        cwd: root,
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json()).toMatchObject({ state: "destroyed" });
      expect(r.stderr).not.toContain("ALPINE_FAULT_REACHED");
    }
  });
});
