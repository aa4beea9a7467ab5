import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "./env.ts";

/**
 * `alpine launch` starts sandboxd before the CLI loads (packages/cli/bin/early-sandboxd.js), so
 * its Node start overlaps the CLI's. The local provider adopts that process, which then works as
 * one it spawned itself would (packages/cli/test/local-start.test.ts has the ones nothing adopts).
 */
let e: E2EEnv;
const alpine = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCli(args, {
    env: { ...e.env, ...env },
    cwd: e.cwd,
    timeoutMs: 180_000,
  });

/** Processes whose environment holds `text`. */
function withEnv(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "latin1").includes(text)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile, or not ours to read: neither is a process of this test.
    }
  }
  return pids;
}

const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");

beforeAll(async () => {
  e = await makeEnv();
});

afterAll(async () => {
  for (const name of ["early", "spawned"])
    await alpine(["teardown", name, "--force", "--json"]).catch(() => {});
  await e.close();
});

const registry = "http://127.0.0.1:9/early-registry/";

/** Launches `name` (argv `args`) with a host npm registry set; its sandboxd and OpenCode's environment. */
async function launched(name: string, args: string[]) {
  const r = await alpine(args, { npm_config_registry: registry });
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const dir = join(e.alpineHome, "sandboxes", r.json().id as string);
  const pid = Number(readFileSync(join(dir, "sandboxd.pid"), "utf8"));
  const opencode = await waitFor(`OpenCode's process of ${name}`, async () =>
    withEnv(`HOME=${join(dir, "home")}\0`).find((p) =>
      readFileSync(`/proc/${p}/cmdline`, "latin1").includes("serve"),
    ),
  );
  return { dir, pid, opencodeEnv: environ(opencode) };
}

describe("the sandboxd `alpine launch` starts before it loads", () => {
  it("is the sandbox's sandboxd: it works in the sandbox's dir and hands on the host's settings from its config", async () => {
    const { dir, pid, opencodeEnv } = await launched("early", [
      "launch",
      "early",
      "--repo",
      e.repoUrl,
      "--json",
    ]);
    // Started by bin/early-sandboxd.js (its environment says so), yet it works in the sandbox's dir.
    expect(environ(pid)).toContain("ALPINE_SANDBOXD_EARLY=1");
    expect(environ(pid).some((v) => v.startsWith("HOME="))).toBe(false);
    expect(readlinkSync(`/proc/${pid}/cwd`)).toBe(dir);
    // Its environment had no registry: OpenCode gets the host's from sandboxd's config instead.
    expect(environ(pid).some((v) => v.startsWith("npm_config_registry="))).toBe(false);
    expect(opencodeEnv).toContain(`npm_config_registry=${registry}`);
    expect(opencodeEnv.some((v) => v.startsWith("ALPINE_SANDBOXD_EARLY"))).toBe(false);
  });

  it("a sandboxd the provider spawns itself gets the host's settings the same way, from its config", async () => {
    // A global flag before the verb: bin/alpine.js starts no early sandboxd for this command line.
    const { dir, pid, opencodeEnv } = await launched("spawned", [
      "--json",
      "launch",
      "spawned",
      "--repo",
      e.repoUrl,
    ]);
    expect(environ(pid).some((v) => v.startsWith("ALPINE_SANDBOXD_EARLY"))).toBe(false);
    expect(environ(pid)).toContain(`HOME=${join(dir, "home")}`);
    expect(environ(pid).some((v) => v.startsWith("npm_config_registry="))).toBe(false);
    expect(opencodeEnv).toContain(`npm_config_registry=${registry}`);
  });
});
