import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "../env.ts";
import { providerUnderTest } from "../providers.ts";

/**
 * Scale-to-zero on a provider that keeps disks (docs/durability.md, "Suspension"), through the
 * CLI: sandbox.suspend_after_minutes set to 3 s by its ALPINE_ variable, a busy agent is never
 * suspended, an idle one stops by itself (its sandboxd no longer answers) and the next command
 * records it `suspended`; `list` shows it with its disk; `task` and `diff` resume it transparently
 * with its work; a teardown of a suspended sandbox whose work is saved does not start it.
 */
export function suspendSuite(kind: "local" | "docker"): void {
  const p = providerUnderTest(kind);
  let e: E2EEnv;
  const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd });
  const NAME = "dozy";
  const SUSPEND_AFTER_S = 3;

  beforeAll(async () => {
    if (p.skipReason) return;
    e = await makeEnv({ yaml: p.yaml });
    Object.assign(e.env, p.env, { ALPINE_SANDBOX_SUSPEND_AFTER_MINUTES: String(SUSPEND_AFTER_S / 60) });
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail" && p.diagnostics) console.error(p.diagnostics());
  });
  afterAll(async () => {
    if (!e) return;
    await alpine("teardown", NAME, "--force", "--json").catch(() => {});
    await e.close();
  });

  const state = async () => (await alpine("status", NAME, "--json")).json().state as string;
  const answers = async (url: string) =>
    fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
  const transitions = async () =>
    (
      (await alpine("logs", NAME, "--json")).json().events as {
        kind: string;
        from: string;
        to: string;
        reason: string;
      }[]
    )
      .filter((ev) => ev.kind === "transition")
      .map((ev) => `${ev.from}→${ev.to}`);

  describe.skipIf(p.skipReason)(`suspension of a ${kind} sandbox`, () => {
    let webUrl = "";

    it("a busy agent is never suspended; once idle past suspend_after it stops and is recorded suspended", async () => {
      // The agent works for 3 × suspend_after.
      const r = await alpine(
        "launch",
        NAME,
        "--repo",
        e.repoUrl,
        "--task",
        `SLEEP ${SUSPEND_AFTER_S * 3000} WRITE NOTES.md written before the nap`,
        "--json",
      );
      expect(r.code, r.stdout + r.stderr).toBe(0);
      webUrl = r.json().web_url;
      // Sampled through the whole busy stretch: never suspended, its sandboxd always answers.
      const seen = new Set<string>();
      const busyUntil = Date.now() + SUSPEND_AFTER_S * 2000;
      while (Date.now() < busyUntil) {
        const s = (await alpine("status", NAME, "--json")).json();
        seen.add(s.state);
        if (s.state === "completed") break;
        expect(await answers(webUrl)).toBe(true);
      }
      expect(seen.has("suspended")).toBe(false);
      await waitFor("suspension", async () => (await state()) === "suspended", { timeoutMs: 60_000 });
      // Its processes are gone: the sandboxd (and OpenCode it supervised) no longer answers.
      expect(await answers(webUrl)).toBe(false);
      const history = await transitions();
      expect(history.some((t) => /^(running|completed)→suspended$/.test(t))).toBe(true);
      const status = (await alpine("status", NAME, "--json")).json();
      expect(status.state).toBe("suspended");
    });

    it("list shows the suspended sandbox and the disk it holds", async () => {
      const r = await alpine("list", "--json");
      expect(r.code, r.stderr).toBe(0);
      const item = (r.json() as { name: string; state: string; disk_bytes: number | null }[]).find(
        (i) => i.name === NAME,
      );
      expect(item?.state).toBe("suspended");
      // The clone plus OpenCode's data: more than a few kB, far less than a GB.
      expect(item?.disk_bytes).toBeGreaterThan(10_000);
      expect(item?.disk_bytes).toBeLessThan(1024 ** 3);
      const table = await alpine("list");
      expect(table.stdout).toMatch(new RegExp(`${NAME}\\s+suspended.*\\d+(\\.\\d)? (KB|MB)`));
    });

    it("task resumes it transparently, on its kept workspace", async () => {
      const r = await alpine("task", NAME, "WRITE LATER.md written after the nap", "--wait", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json().state).toBe("completed");
      const history = await transitions();
      expect(history).toContain("suspended→provisioning");
      expect(history.at(-1)).toBe("running→completed");
      // The work of before the suspension is still there, beside the new file.
      const diff = (await alpine("diff", NAME, "--stat", "--json")).json();
      const files = (diff.files as { path: string }[]).map((f) => f.path);
      expect(files).toEqual(expect.arrayContaining(["NOTES.md", "LATER.md"]));
    });

    it("list records a sandbox that suspended itself (nothing else looked since); diff resumes it", async () => {
      const url = (await alpine("status", NAME, "--json")).json().runtime.web_url as string;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      // Only the runtime is watched here: no alpine command runs until it has stopped by itself.
      await waitFor("the runtime stops by itself", async () => !(await answers(url)), { timeoutMs: 60_000 });
      // list alone records it (its sandboxd may still be stopping OpenCode for a moment).
      await waitFor(
        "list records the suspension",
        async () =>
          ((await alpine("list", "--json")).json() as { name: string; state: string }[]).find(
            (i) => i.name === NAME,
          )?.state === "suspended",
        { timeoutMs: 60_000 },
      );
      const resumes = async () => (await transitions()).filter((t) => t === "suspended→provisioning").length;
      const before = await resumes();
      const r = await alpine("diff", NAME, "--stat", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect((r.json().files as { path: string }[]).map((f) => f.path)).toContain("LATER.md");
      // diff resumed it (it may have suspended again since: suspend_after is 3 s here).
      expect(await resumes()).toBe(before + 1);
    });

    it("teardown of a suspended sandbox whose work is saved does not start it", async () => {
      const cp = await alpine("checkpoint", NAME, "--json");
      expect(cp.code, cp.stdout + cp.stderr).toBe(0);
      await waitFor("suspension", async () => (await state()) === "suspended", { timeoutMs: 60_000 });
      const before = (await transitions()).length;
      const r = await alpine("teardown", NAME, "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json()).toMatchObject({ destroyed: true, checkpoint_id: cp.json().checkpoint_id });
      // Straight from suspended to tearing_down: no provisioning in between.
      expect((await transitions()).slice(before)).toEqual([
        "suspended→tearing_down",
        "tearing_down→destroyed",
      ]);
    });
  });
}
