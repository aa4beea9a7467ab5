import { describe, expect, it } from "vitest";
import {
  AlpineError,
  CONTROL_PLANE_TASK_WAIT,
  type WaitOutcome,
  type WaitStatus,
  waitExitCode,
  waitOperation,
  waitPauseMs,
  waitVerdict,
} from "../src/index.ts";
import { FakeClock } from "./fakes/clock.ts";

/** `alpine wait`: the verdict on one status, the exit codes, and the polling loop's pacing. */

function status(patch: {
  state?: WaitStatus["state"];
  agent?: WaitStatus["runtime"]["agent"];
  probe?: WaitStatus["runtime"]["probe_state"];
  task?: string | null;
  finished?: boolean;
  reason?: string | null;
  error?: string;
}): WaitStatus {
  const task =
    patch.task === null
      ? null
      : {
          prompt_summary: "WRITE A.md a",
          session_id: "ses_1",
          started_at: "2026-01-01T00:00:00.000Z",
          finished_at: patch.finished ? "2026-01-01T00:01:00.000Z" : null,
          state: patch.task ?? "running",
          usage: null,
        };
  return {
    name: "demo",
    state: patch.state ?? "running",
    task,
    error: patch.error ? new AlpineError("sandbox_unavailable", patch.error).toJSON() : null,
    runtime: {
      probe_state: patch.probe ?? "ok",
      agent: patch.agent ?? "busy",
      ...(patch.reason !== undefined ? { reason: patch.reason } : {}),
    },
  };
}

describe("waitVerdict: what one status means", () => {
  const table: [string, WaitStatus, WaitOutcome | null, number?][] = [
    ["busy agent: keep waiting", status({ agent: "busy" }), null],
    ["retrying agent: keep waiting", status({ agent: "retry" }), null],
    ["unknown agent: keep waiting", status({ agent: "unknown" }), null],
    ["idle before sandboxd has the task: keep waiting", status({ agent: "idle", task: "running" }), null],
    ["idle after its task", status({ agent: "idle", task: "completed" }), "done"],
    ["completed sandbox", status({ state: "completed", agent: "idle", task: "completed" }), "done"],
    ["idle, no task given", status({ agent: "idle", task: null }), "done"],
    [
      "idle, resumed: the record's task finished",
      status({ agent: "idle", task: "unknown", finished: true }),
      "done",
    ],
    ["agent error", status({ agent: "error", task: "failed" }), "error"],
    ["failed task with an idle agent", status({ agent: "idle", task: "failed" }), "error"],
    ["needs input", status({ agent: "needs_input" }), "input"],
    ["budget", status({ agent: "budget" }), "budget"],
    ["tearing down", status({ state: "tearing_down", probe: "not_running" }), "gone"],
    ["destroyed", status({ state: "destroyed", probe: "not_running", agent: "idle" }), "gone"],
    ["sandbox error", status({ state: "error", probe: "not_running" }), "gone"],
    ["sandboxd unavailable briefly: keep waiting", status({ probe: "unavailable" }), null, 10_000],
    [
      "sandboxd unavailable for a minute",
      status({ probe: "unavailable", error: "no answer" }),
      "gone",
      60_000,
    ],
  ];
  it.each(table)("%s", (_label, s, outcome, unavailableFor = 0) => {
    expect(waitVerdict(s, unavailableFor)?.outcome ?? null).toBe(outcome);
  });

  it("carries the agent's reason when sandboxd gives one, else says what it saw", () => {
    expect(waitVerdict(status({ agent: "needs_input", reason: "allow bash: rm -rf build?" }))?.reason).toBe(
      "allow bash: rm -rf build?",
    );
    expect(waitVerdict(status({ agent: "budget", reason: "spent $2.10 of $2.00" }))?.reason).toBe(
      "spent $2.10 of $2.00",
    );
    expect(waitVerdict(status({ agent: "idle", task: "completed" }))?.reason).toContain("WRITE A.md a");
    expect(waitVerdict(status({ state: "destroyed", probe: "not_running" }))?.reason).toBe(
      "the sandbox is destroyed",
    );
  });
});

describe("waitExitCode", () => {
  const table: [WaitOutcome[], "done" | "input" | "any", number][] = [
    [["done"], "done", 0],
    [["done", "done"], "done", 0],
    [["error"], "done", 3],
    [["input"], "done", 4],
    [["budget"], "done", 5],
    [["timeout"], "done", 6],
    [["gone"], "done", 7],
    [["input"], "input", 0],
    [["done"], "input", 8],
    [["done", "input"], "any", 0],
    [["error"], "any", 3],
    [["budget"], "any", 5],
    [["done", "timeout", "error"], "done", 3],
    [["error", "gone"], "done", 7],
    [["input", "budget"], "done", 5],
    [["timeout", "input"], "done", 4],
  ];
  it.each(table)("%j waiting for %s → %i", (outcomes, waitFor, code) => {
    expect(waitExitCode(outcomes, waitFor)).toBe(code);
  });
});

describe("waitOperation: the loop", () => {
  it("looks at each sandbox until each stopped, reports them in the order named", async () => {
    const clock = new FakeClock();
    const script: Record<string, WaitStatus[]> = {
      a: [status({ agent: "busy" }), status({ agent: "busy" }), status({ agent: "idle", task: "completed" })],
      b: [status({ agent: "busy" }), status({ agent: "error", task: "failed", reason: "model said 400" })],
    };
    const looks: string[] = [];
    const stops: string[] = [];
    const out = await waitOperation(
      ["a", "b"],
      { for: "done" },
      {
        clock,
        remote: false,
        status: async (name) => {
          looks.push(name);
          return { ...(script[name]?.shift() ?? status({ agent: "busy" })), name };
        },
        onStop: (item) => stops.push(item.name),
      },
    );
    expect(stops).toEqual(["b", "a"]);
    expect(out.sandboxes.map((s) => [s.name, s.outcome])).toEqual([
      ["a", "done"],
      ["b", "error"],
    ]);
    expect(out.sandboxes[1]?.reason).toBe("model said 400");
    expect(out.exit_code).toBe(3);
    // b stopped after its second look and is not looked at again.
    expect(looks.filter((n) => n === "b")).toHaveLength(2);
    expect(clock.slept).toEqual([500, 500]);
  });

  it("ends at --timeout with the sandboxes still going", async () => {
    const clock = new FakeClock();
    const out = await waitOperation(
      ["slow"],
      { for: "done", timeoutMs: 1_200 },
      { clock, remote: false, status: async (name) => ({ ...status({ agent: "busy" }), name }) },
    );
    expect(out.sandboxes[0]).toMatchObject({ outcome: "timeout", reason: "still busy after 1 s" });
    expect(out.exit_code).toBe(6);
    expect(clock.slept).toEqual([500, 500, 200]);
  });

  it("a sandbox removed mid-wait is gone; one that never existed is an error", async () => {
    const clock = new FakeClock();
    let looks = 0;
    const out = await waitOperation(
      ["x"],
      { for: "done" },
      {
        clock,
        remote: false,
        status: async (name) => {
          if (looks++ > 0) throw new AlpineError("sandbox_not_found", "sandbox 'x' not found");
          return { ...status({ agent: "busy" }), name };
        },
      },
    );
    expect(out.sandboxes[0]).toMatchObject({ outcome: "gone", state: "running" });
    expect(out.exit_code).toBe(7);
    await expect(
      waitOperation(
        ["nope"],
        { for: "done" },
        {
          clock,
          remote: false,
          status: async () => {
            throw new AlpineError("sandbox_not_found", "sandbox 'nope' not found");
          },
        },
      ),
    ).rejects.toMatchObject({ reason: "sandbox_not_found" });
  });

  it("a transient failure keeps waiting; one lasting a minute ends as gone", async () => {
    const clock = new FakeClock();
    const out = await waitOperation(
      ["flaky"],
      { for: "done" },
      {
        clock,
        remote: true,
        status: async () => {
          throw new AlpineError("sandbox_unavailable", "the control plane did not answer");
        },
      },
    );
    expect(out.sandboxes[0]?.outcome).toBe("gone");
    expect(out.sandboxes[0]?.reason).toContain("the control plane did not answer");
    expect(out.waited_ms).toBeGreaterThanOrEqual(60_000);
  });

  it("on the control plane, looks are paced like task --wait: one short request each", async () => {
    const clock = new FakeClock();
    let looks = 0;
    const out = await waitOperation(
      ["long"],
      { for: "done", timeoutMs: 3_600_000 },
      {
        clock,
        remote: true,
        status: async (name) => {
          looks++;
          return { ...status({ agent: "busy" }), name };
        },
      },
    );
    expect(out.exit_code).toBe(6);
    expect(clock.slept[0]).toBe(CONTROL_PLANE_TASK_WAIT.pollMs(0));
    expect(
      clock.slept.every(
        (ms, i) => i === clock.slept.length - 1 || ms === waitPauseMs(true, sum(clock.slept.slice(0, i))),
      ),
    ).toBe(true);
    // An hour's wait: about a hundred looks, not one every half second.
    expect(looks).toBeGreaterThan(50);
    expect(looks).toBeLessThan(150);
  });
});

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
