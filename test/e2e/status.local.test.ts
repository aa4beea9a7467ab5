import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "./env.ts";

/**
 * `alpine status` probes: many at once against one sandbox while its task
 * finishes (each reconciles under its lease: one `completed` transition, no
 * failures), and a sandboxd that hangs is reported unavailable after the
 * status probe's short timeout instead of the client's default.
 */
let e: E2EEnv;
let id = "";
const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 120_000 });

beforeAll(async () => {
  e = await makeEnv();
  const r = await alpine(
    "launch",
    "probed",
    "--repo",
    e.repoUrl,
    "--task",
    "SLEEP 3000 WRITE P.md probed",
    "--json",
  );
  expect(r.code, r.stdout + r.stderr).toBe(0);
  id = r.json().id;
});

afterAll(async () => {
  await alpine("teardown", "probed", "--force", "--json").catch(() => {});
  await e.close();
});

describe("status probes", () => {
  it("concurrent status commands while the task finishes all answer; the completion is recorded once", async () => {
    await waitFor(
      "the task to complete",
      async () => {
        const runs = await Promise.all(Array.from({ length: 4 }, () => alpine("status", "probed", "--json")));
        for (const r of runs) {
          expect(r.code, r.stdout + r.stderr).toBe(0);
          expect(r.json().runtime.probe_state).toBe("ok");
        }
        return runs.some((r) => r.json().state === "completed");
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    const logs = (await alpine("logs", "probed", "--json")).json();
    const events = (logs.events ?? logs) as { to?: string | null; reason?: string }[];
    expect(events.filter((ev) => ev.to === "completed")).toHaveLength(1);
  });

  it("a sandboxd that does not answer is reported unavailable after the short status timeout", async () => {
    const pid = Number(readFileSync(join(e.alpineHome, "sandboxes", id, "sandboxd.pid"), "utf8"));
    process.kill(pid, "SIGSTOP");
    try {
      const r = await alpine("status", "probed", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const out = r.json();
      expect(out.runtime.probe_state).toBe("unavailable");
      expect(out.error).toMatchObject({
        reason_code: "sandbox_unavailable",
        details: { timeout: true, timeout_ms: 5000 },
      });
    } finally {
      process.kill(pid, "SIGCONT");
    }
    const again = (await alpine("status", "probed", "--json")).json();
    expect(again.runtime.probe_state).toBe("ok");
  });
});
