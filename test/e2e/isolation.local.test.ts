import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv } from "./env.ts";

/**
 * What a local sandbox says about its confinement: without bubblewrap every start warns on
 * stderr and `status` shows it; under bubblewrap `status` lists what the agent reads.
 */
let e: E2EEnv;
const alpine = (env: NodeJS.ProcessEnv, ...args: string[]) =>
  runCli(args, { env: { ...e.env, ...env }, cwd: e.cwd, timeoutMs: 120_000 });
const NONE = { ALPINE_SANDBOX_ISOLATION: "none" };

beforeAll(async () => {
  e = await makeEnv();
});

afterAll(async () => {
  for (const name of ["bare", "boxed"])
    await alpine({}, "teardown", name, "--force", "--json").catch(() => {});
  await e.close();
});

describe("a local sandbox's confinement", () => {
  it("isolation none: every start says loudly what it does not protect, and status shows it", async () => {
    const first = await alpine(NONE, "launch", "bare", "--repo", e.repoUrl, "--json");
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(first.stderr).toMatch(/warning: bare: NOT ISOLATED .*every file you can/);
    const status = await alpine(NONE, "status", "bare", "--json");
    expect(status.json().confinement).toMatchObject({ boundary: "none", read_only: null });
    expect(status.json().confinement.warning).toMatch(/^NOT ISOLATED/);
    expect((await alpine(NONE, "status", "bare")).stdout).toMatch(/confined\s+NOT ISOLATED/);
    // Not once per home: the next start says it again.
    expect((await alpine(NONE, "teardown", "bare", "--json")).code).toBe(0);
    const again = await alpine(NONE, "launch", "bare", "--json");
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stderr).toContain("warning: bare: NOT ISOLATED");
  });

  it("under bubblewrap: status lists the paths the agent reads, and no warning", async () => {
    const r = await alpine(
      { ALPINE_SANDBOX_ISOLATION: "bubblewrap" },
      "launch",
      "boxed",
      "--repo",
      e.repoUrl,
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).not.toContain("NOT ISOLATED");
    const c = (await alpine({}, "status", "boxed", "--json")).json().confinement;
    expect(c.boundary).toBe("bubblewrap");
    expect(c.read_only).toContain("/usr");
    expect(c.read_only).not.toContain(e.home);
    expect(c.read_write.some((p: string) => p.endsWith("/workspace"))).toBe(true);
    expect((await alpine({}, "status", "boxed")).stdout).toMatch(/confined\s+bubblewrap: reads \/usr/);
  });
});
