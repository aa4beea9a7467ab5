import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { useControlPlane } from "./control-plane.ts";
import { waitFor } from "./env.ts";

/**
 * Scale-to-zero on the control plane in workerd (`alpine cloud dev`): the SandboxObject's alarm
 * (every 2 s here) suspends a sandbox whose agent has been idle for suspend_after (6 s, from the
 * CLI's ALPINE_ variable, which travels with its requests): its work checkpointed into R2, its
 * runtime stopped. A request that needs it (`task`) resumes it with its work.
 */
const NAME = "dozy";
const cp = useControlPlane({
  names: [NAME],
  vars: { ALARM_INTERVAL_SECONDS: "2" },
  env: { ALPINE_SANDBOX_SUSPEND_AFTER_MINUTES: "0.1" },
});
const alpine = (...args: string[]) => runCli(args, { env: cp.e.env, cwd: cp.e.cwd });
const transitions = async () =>
  ((await alpine("logs", NAME, "--json")).json().events as { kind: string; from: string; to: string }[])
    .filter((ev) => ev.kind === "transition")
    .map((ev) => `${ev.from}→${ev.to}`);

describe("suspension of a cloudflare sandbox (alpine cloud dev)", () => {
  it("the alarm suspends an idle sandbox, its work checkpointed; status shows it without resuming", async () => {
    const r = await alpine(
      "launch",
      NAME,
      "--repo",
      cp.e.repoUrl,
      "--task",
      "WRITE NOTES.md before the nap",
      "--json",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await waitFor(
      "suspension",
      async () => (await alpine("status", NAME, "--json")).json().state === "suspended",
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );
    const status = (await alpine("status", NAME, "--json")).json();
    expect(status.state).toBe("suspended");
    expect(status.durability).toMatchObject({ verified: true });
    const history = await transitions();
    // Checkpointed (→ saving → back), then suspended from where it was (running or completed).
    const suspendedAt = history.findIndex((t) => t.endsWith("→suspended"));
    expect(suspendedAt).toBeGreaterThan(0);
    expect(history[suspendedAt - 1]).toMatch(/^saving→(running|completed)$/);
    const listed = (await alpine("list", "--json")).json() as {
      name: string;
      state: string;
      disk_bytes: number;
    }[];
    expect(listed.find((i) => i.name === NAME)).toMatchObject({ state: "suspended" });
    expect(listed.find((i) => i.name === NAME)?.disk_bytes).toBeGreaterThan(0);
    // The control plane's audit log says who suspended it: the alarm, on its own.
    const audit = (await alpine("logs", "--audit", "--json")).json() as Record<string, unknown>[];
    expect(audit).toContainEqual(
      expect.objectContaining({ principal: "system:alarm", action: "suspend", sandbox: NAME, outcome: "ok" }),
    );
  });

  it("a task request resumes it from its checkpoint, with its work", async () => {
    const r = await alpine("task", NAME, "WRITE LATER.md after the nap", "--wait", "--json");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await transitions()).toContain("suspended→provisioning");
    const diff = (await alpine("diff", NAME, "--stat", "--json")).json();
    expect((diff.files as { path: string }[]).map((f) => f.path)).toEqual(
      expect.arrayContaining(["NOTES.md", "LATER.md"]),
    );
  });
});
