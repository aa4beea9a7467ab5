import { writeSync } from "node:fs";
import { AlpineError } from "@alpine/core/errors";
import { FAULT_STEPS, type FaultPoints, type FaultStep } from "@alpine/core/faults";

/**
 * Fault points for reliability tests. Only the test bundle of the CLI
 * (built with `__ALPINE_FAULTS__ = true`, see test/reliability/harness.ts, buildClis)
 * ever calls this; the production build compiles it out.
 *
 *   ALPINE_FAULT_AT=<step>         one of FAULT_STEPS
 *   ALPINE_FAULT_ACTION=pause|kill pause (default): print a marker line on
 *                                  stderr and freeze the whole process, so the
 *                                  test can SIGKILL it from outside; kill:
 *                                  SIGKILL itself at once.
 */
export function faultPointsFromEnv(env: NodeJS.ProcessEnv = process.env): FaultPoints | undefined {
  const at = env.ALPINE_FAULT_AT;
  if (!at) return undefined;
  if (!(FAULT_STEPS as readonly string[]).includes(at)) {
    throw new AlpineError("usage_invalid", `ALPINE_FAULT_AT=${at} is not a fault step`, {
      known: [...FAULT_STEPS],
    });
  }
  const action = env.ALPINE_FAULT_ACTION ?? "pause";
  if (action !== "pause" && action !== "kill") {
    throw new AlpineError("usage_invalid", `ALPINE_FAULT_ACTION=${action} is not pause or kill`);
  }
  return {
    reached(step: FaultStep) {
      if (step !== at) return;
      // Synchronous on purpose: nothing else in this process (renewals, streams) runs past the step.
      writeSync(2, `ALPINE_FAULT_REACHED ${step} ${process.pid}\n`);
      if (action === "kill") process.kill(process.pid, "SIGKILL");
      // A test that died itself must not leave this process frozen forever.
      const cell = new Int32Array(new SharedArrayBuffer(4));
      Atomics.wait(cell, 0, 0, 600_000);
      process.kill(process.pid, "SIGKILL");
    },
  };
}
