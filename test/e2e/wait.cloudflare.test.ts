import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { useControlPlane } from "./control-plane.ts";

/**
 * `alpine wait` through the control plane (`alpine cloud dev`: the Worker and its Durable Objects in
 * workerd): done with exit 0, then a sandbox torn down while waited on with exit 7. Each look is
 * its own short `status` request (the pacing is core's test/wait.test.ts).
 */
const NAME = "cp-waited";
const cp = useControlPlane({ names: [NAME] });
const alpine = (...args: string[]) => runCli(args, { env: cp.e.env, cwd: cp.e.cwd, timeoutMs: 180_000 });

describe("alpine wait through the control plane", () => {
  it("waits for the task: exit 0, done", async () => {
    const r = await alpine(
      "launch",
      NAME,
      "--repo",
      cp.e.repoUrl,
      "--task",
      "SLEEP 6000 WRITE A.md cp",
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const w = await alpine("wait", NAME, "--json");
    expect(w.code, w.stdout + w.stderr).toBe(0);
    expect(w.json().sandboxes[0]).toMatchObject({ name: NAME, outcome: "done", state: "completed" });
    // The first look came before the 6 s task ended: the wait took several (paced) looks.
    expect(w.json().waited_ms).toBeGreaterThan(1_000);
  });

  it("a sandbox torn down while waited on ends the wait with exit 7", async () => {
    const t = await alpine("task", NAME, "SLEEP 60000 WRITE B.md slow");
    expect(t.code, t.stdout + t.stderr).toBe(0);
    const waiting = alpine("wait", NAME, "--json");
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const down = await alpine("teardown", NAME, "--force", "--json");
    expect(down.code, down.stdout + down.stderr).toBe(0);
    const w = await waiting;
    expect(w.code, w.stdout + w.stderr).toBe(7);
    expect(w.json().sandboxes[0].outcome).toBe("gone");
  });
});
