import type { StatusView } from "@alpine/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "../env.ts";
import type { RecordedRequest } from "../fixtures/stub-model.ts";
import { providerUnderTest } from "../providers.ts";

/**
 * The agent's signals on the real stack (issue 17): every agent state reached with the stub
 * model — busy, idle, budget, retry, error, needs_input (a permission and a question) — with
 * its reason in `status` (text and --json) and `list`; the task's end (completed, interrupted,
 * failed); tokens and cost from OpenCode's own message metadata; and a budget pause end to end
 * (stopped at the limit with what was spent → a new task is refused → `task --budget +N` →
 * it goes on → nothing of the work lost). One sandbox carries the scenarios in order; a second
 * one holds the question (a waiting session takes no further task).
 */
export function signalsSuite(kind: "local" | "docker" | "cloudflare"): void {
  const p = providerUnderTest(kind);
  let e: E2EEnv;

  const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd });
  const statusJson = async (name: string) => {
    const r = await alpine("status", name, "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    return r.json() as StatusView;
  };
  /** Polls `status --json` until `pred` holds (the agent's state as sandboxd derives it). */
  const statusWhen = (name: string, what: string, pred: (s: StatusView) => boolean, timeoutMs = 60_000) =>
    waitFor(
      what,
      async () => {
        const s = await statusJson(name);
        return pred(s) ? s : null;
      },
      { timeoutMs, intervalMs: 300 },
    );
  /** The stub's agent requests whose last user message contains `marker`. */
  const agentRequests = (marker: string): RecordedRequest[] =>
    e.model.requests.filter((q) => {
      if (q.kind !== "agent") return false;
      const messages = (
        (q.body as { messages?: { role: string; content?: unknown }[] })?.messages ?? []
      ).filter((m) => m.role === "user");
      return JSON.stringify(messages[messages.length - 1]?.content ?? "").includes(marker);
    });

  beforeAll(async () => {
    if (p.skipReason) return;
    e = await makeEnv({
      yaml: p.yaml,
      // A command under `ask` makes OpenCode ask; the question tool allowed (alpine's headless default denies it).
      opencodeConfig: { permission: { bash: { "*": "allow", "touch *": "ask" }, question: "allow" } },
    });
    // The budget from the environment (set whole, as JSON): every provider reads it the same way.
    Object.assign(e.env, p.env, { ALPINE_SANDBOX_BUDGET: JSON.stringify({ sandbox: { tokens: 2000 } }) });
    await p.start?.(e);
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail" && p.diagnostics) console.error(p.diagnostics());
  });

  afterAll(async () => {
    if (!e) return;
    for (const name of ["sig", "sig-q"]) {
      await runCli(["teardown", name, "--force", "--json"], { env: e.env, cwd: e.cwd }).catch(() => {});
    }
    await p.stop?.();
    await e.close();
  });

  describe.skipIf(p.skipReason)(`agent signals on ${kind}`, () => {
    it("busy while the turn runs, then idle with the task completed and its tokens and cost", async () => {
      const r = await alpine(
        "launch",
        "sig",
        "--repo",
        e.repoUrl,
        "--task",
        "SLEEP 5000 USAGE 300 100 WRITE A.md first part",
        "--json",
      );
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const busy = await statusJson("sig");
      expect(busy.runtime.agent).toBe("busy");
      expect(busy.runtime.agent_reason).toBeNull();
      const done = await statusWhen("sig", "the first task to complete", (s) => s.state === "completed");
      expect(done.runtime.agent).toBe("idle");
      expect(done.task?.state).toBe("completed");
      // Every completion the stub answered for this prompt reported 300 in / 100 out.
      const steps = agentRequests("first part").length;
      expect(steps).toBeGreaterThanOrEqual(2);
      expect(done.task?.usage).toMatchObject({ input: 300 * steps, output: 100 * steps });
      // Cost from the stub model's price in OpenCode's config: $1 / $2 per million tokens.
      expect(done.task?.usage?.cost).toBeCloseTo(steps * (300 * 1 + 100 * 2) * 1e-6, 9);
      expect(done.runtime.usage).toMatchObject({ input: 300 * steps, output: 100 * steps });

      const text = (await alpine("status", "sig")).stdout;
      expect(text).toContain(`spent     ${400 * steps} tokens (in ${300 * steps}, out ${100 * steps})`);
      expect(text).toMatch(/task {6}.*\(completed, \d+ tokens/);
      const list = await alpine("list", "--json");
      expect(list.json()).toEqual([
        expect.objectContaining({
          name: "sig",
          agent: "idle",
          agent_reason: null,
          usage: expect.objectContaining({ input: 300 * steps }),
        }),
      ]);
      expect((await alpine("list")).stdout).toMatch(
        new RegExp(`sig\\s+completed\\s+idle\\s+${kind}.*${400 * steps} tok`),
      );
    });

    it("a runaway turn stops at the sandbox's budget, keeps its work, and goes on after --budget +N", async () => {
      const r = await alpine("task", "sig", "USAGE 300 100 LOOP 12", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const stopped = await statusWhen("sig", "the budget stop", (s) => s.runtime.agent === "budget");
      expect(stopped.runtime.agent_reason).toMatch(/^sandbox budget reached: \d+ of 2000 tokens spent/);
      expect(stopped.runtime.agent_reason).toContain("--budget +N");
      const settled = await statusWhen("sig", "the task to end", (s) => s.task?.state !== "running");
      expect(settled.task?.state).toBe("interrupted");
      // Stopped early: far fewer steps than the 12 asked for.
      expect(agentRequests("LOOP 12").length).toBeLessThan(8);
      expect(settled.workspace?.changed_files).toEqual(
        expect.arrayContaining([
          { path: "A.md", status: "added" },
          { path: "LOOP.log", status: "added" },
        ]),
      );
      const text = (await alpine("status", "sig")).stdout;
      expect(text).toMatch(/agent {5}budget: sandbox budget reached: \d+ of 2000 tokens/);
      expect(text).toMatch(/task {6}USAGE 300 100 LOOP 12 \(interrupted/);
      const list = await alpine("list", "--json");
      expect(list.json()[0]).toMatchObject({ agent: "budget", agent_reason: stopped.runtime.agent_reason });
      expect((await alpine("list")).stdout).toContain(`sig: budget: ${stopped.runtime.agent_reason}`);

      // Spent: a new task is refused until the budget is raised.
      const refused = await alpine("task", "sig", "USAGE 300 100 WRITE B.md second part", "--json");
      expect(refused.code).toBe(1);
      expect(refused.json()).toMatchObject({ reason_code: "budget_reached" });
      const bad = await alpine("task", "sig", "--budget", "2000", "go", "--json");
      expect(bad.code).toBe(1);
      expect(bad.json()).toMatchObject({ reason_code: "usage_invalid" });

      const raised = await alpine(
        "task",
        "sig",
        "--budget",
        "+2000",
        "USAGE 300 100 WRITE B.md second part",
        "--json",
      );
      expect(raised.code, raised.stdout + raised.stderr).toBe(0);
      const done = await statusWhen("sig", "the continued task to complete", (s) => s.state === "completed");
      expect(done.runtime.agent).toBe("idle");
      expect(done.runtime.agent_reason).toBeNull();
      expect(done.task?.state).toBe("completed");
      expect(done.workspace?.changed_files).toEqual(
        expect.arrayContaining([
          { path: "A.md", status: "added" },
          { path: "LOOP.log", status: "added" },
          { path: "B.md", status: "added" },
        ]),
      );
      const diff = (await alpine("diff", "sig", "--json")).json();
      expect(diff.patch).toContain("+first part");
      expect(diff.patch).toContain("+second part");
      expect(diff.patch).toContain("+step 1");
    });

    it("retry shows the upstream error and the next attempt, then the turn recovers", async () => {
      const r = await alpine("task", "sig", "FAIL 500 2 recover please", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const retrying = await statusWhen("sig", "a retry", (s) => s.runtime.agent === "retry");
      expect(retrying.runtime.agent_reason).toMatch(
        /^retrying after: .+ \(attempt \d+, next at \d\d:\d\d:\d\dZ\)$/,
      );
      // The text says it too, unless the retried turn is already running again by then (a loaded
      // machine): then the runtime line shows the agent busy.
      const text = (await alpine("status", "sig")).stdout;
      expect(text).toMatch(/agent {5}retry: retrying after|runtime +\w+, agent busy/);
      const done = await statusWhen("sig", "the retried task to complete", (s) => s.state === "completed");
      expect(done.task?.state).toBe("completed");
      expect(done.runtime.agent).toBe("idle");
    });

    it("a model error leaves the agent in error with the model's status and message, the task failed", async () => {
      const r = await alpine("task", "sig", "FAIL 400 break please", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const failed = await statusWhen("sig", "the error", (s) => s.runtime.agent === "error");
      expect(failed.runtime.agent_reason).toMatch(/400/);
      expect(failed.runtime.agent_reason).toContain("stub model failure");
      const settled = await statusWhen("sig", "the task to end", (s) => s.task?.state !== "running");
      expect(settled.task?.state).toBe("failed");
      const text = (await alpine("status", "sig")).stdout;
      expect(text).toContain(`agent     error: ${failed.runtime.agent_reason}`);
      expect(text).toMatch(/\(failed/);
      expect((await alpine("list", "--json")).json()[0]).toMatchObject({
        agent: "error",
        agent_reason: failed.runtime.agent_reason,
      });
    });

    it("a permission OpenCode asks puts the agent in needs_input, saying what it asks", async () => {
      const r = await alpine("task", "sig", "SHELL touch asked.txt", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const asking = await statusWhen("sig", "the permission", (s) => s.runtime.agent === "needs_input");
      expect(asking.runtime.agent_reason).toBe('asks permission: bash "touch asked.txt"');
      expect(asking.task?.state).toBe("running");
      const text = (await alpine("status", "sig")).stdout;
      expect(text).toContain('agent     needs_input: asks permission: bash "touch asked.txt"');
      expect((await alpine("list")).stdout).toContain(
        'sig: needs_input: asks permission: bash "touch asked.txt"',
      );
    });

    it("a question the agent asks puts it in needs_input with the question and its options", async () => {
      const r = await alpine(
        "launch",
        "sig-q",
        "--repo",
        e.repoUrl,
        "--task",
        "QUESTION Which database should I use?",
        "--json",
      );
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const asking = await statusWhen("sig-q", "the question", (s) => s.runtime.agent === "needs_input");
      expect(asking.runtime.agent_reason).toBe("asks: Which database should I use? [yes | no]");
      const list = (await alpine("list", "--json")).json();
      expect(list.find((i: { name: string }) => i.name === "sig-q")).toMatchObject({
        agent: "needs_input",
        agent_reason: "asks: Which database should I use? [yes | no]",
      });
    });
  });
}
