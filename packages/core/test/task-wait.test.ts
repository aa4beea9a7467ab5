import { describe, expect, it } from "vitest";
import { CONTROL_PLANE_TASK_WAIT, type OperationContext, taskOperation } from "../src/operations/index.ts";
import { launched, type World, world } from "./fakes/world.ts";

/** The operations' context of the control plane over a fake world, recording warnings. */
function controlPlaneContext(w: World, warnings: string[]): OperationContext {
  return {
    orchestrator: w.orchestrator,
    config: w.deps.config,
    progress: { step() {}, warn: (message) => warnings.push(message) },
    runtimeLogs: async () => [],
    loginUrl: () => "",
    taskWait: CONTROL_PLANE_TASK_WAIT,
  };
}

/** Probes of sandboxd's status since `from` (each one a subrequest or two on the control plane). */
const probes = (w: World, id: string) => w.provider.sandboxd(id).calls.filter((c) => c === "status").length;

describe("task --wait on the control plane: a long wait inside one request stays within its subrequests", () => {
  it("a one-hour task is probed about a hundred times (not 7,200 at 500 ms), and its end is seen within a minute", async () => {
    const w = world();
    const record = await launched(w, "box");
    const sandboxd = w.provider.sandboxd(record.id);
    const start = w.clock.now();
    const sleep = w.clock.sleep.bind(w.clock);
    w.clock.sleep = async (ms) => {
      await sleep(ms);
      if (w.clock.now() - start >= 3600_000 && sandboxd.agent.state === "busy") sandboxd.finishTask();
    };
    const before = probes(w, record.id);
    const view = await taskOperation(controlPlaneContext(w, []), "box", "a long one", { wait: true });
    expect(view.state).toBe("completed");
    const polls = probes(w, record.id) - before;
    expect(polls).toBeLessThan(120);
    // Short at first, growing, never more than a minute apart.
    expect(w.clock.slept[0]).toBe(2_000);
    expect(Math.max(...w.clock.slept)).toBe(60_000);
    expect(w.clock.slept).toEqual([...w.clock.slept].sort((a, b) => a - b));
  });

  it("is bounded: after 300 probes it returns with the sandbox still running, and says so", async () => {
    const w = world();
    const record = await launched(w, "box");
    const before = probes(w, record.id);
    const warnings: string[] = [];
    const view = await taskOperation(controlPlaneContext(w, warnings), "box", "never ends", { wait: true });
    expect(view.state).toBe("running");
    // Only the wait's polls: the task's check that this (local-kind) runtime did not suspend
    // itself asks its health, not its status.
    expect(probes(w, record.id) - before).toBe(CONTROL_PLANE_TASK_WAIT.maxPolls);
    expect(warnings).toEqual([expect.stringContaining("stopped waiting")]);
  });
});
