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
  await alpine(["teardown", "early", "--force", "--json"]).catch(() => {});
  await e.close();
});

describe("the sandboxd `alpine launch` starts before it loads", () => {
  it("is the sandbox's sandboxd: it works in the sandbox's dir and hands on the host's settings from its config", async () => {
    const registry = "http://127.0.0.1:9/early-registry/";
    const r = await alpine(["launch", "early", "--repo", e.repoUrl, "--json"], {
      npm_config_registry: registry,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const id = r.json().id as string;
    const dir = join(e.alpineHome, "sandboxes", id);
    const pid = Number(readFileSync(join(dir, "sandboxd.pid"), "utf8"));
    // Started by bin/early-sandboxd.js (its environment says so), yet it works in the sandbox's dir.
    expect(environ(pid)).toContain("ALPINE_SANDBOXD_EARLY=1");
    expect(environ(pid).some((v) => v.startsWith("HOME="))).toBe(false);
    expect(readlinkSync(`/proc/${pid}/cwd`)).toBe(dir);
    // Its environment had no registry: OpenCode gets the host's from sandboxd's config instead.
    expect(environ(pid).some((v) => v.startsWith("npm_config_registry="))).toBe(false);
    const opencode = await waitFor("OpenCode's process", async () =>
      withEnv(`HOME=${join(dir, "home")}\0`).find((p) =>
        readFileSync(`/proc/${p}/cmdline`, "latin1").includes("serve"),
      ),
    );
    expect(environ(opencode)).toContain(`npm_config_registry=${registry}`);
    expect(environ(opencode).some((v) => v.startsWith("ALPINE_SANDBOXD_EARLY"))).toBe(false);
  });
});
