import { describe, expect, it } from "vitest";
import { launched, type World, world } from "./fakes/world.ts";

async function completed(w: World, name: string): Promise<void> {
  const record = await launched(w, name, { task: "t" });
  w.provider.sandboxd(record.id).finishTask("completed", w.clock.iso());
  await w.orchestrator.waitForTask(name);
}

describe("gc", () => {
  it("tears down completed sandboxes past their retention whose work is saved; keeps the others", async () => {
    const w = world({ config: { sandbox: { completed_retention_minutes: 60 } } });
    await completed(w, "old");
    await completed(w, "dirty");
    w.provider.sandboxd(w.record("dirty").id).edit("a.ts");
    await launched(w, "live");
    w.clock.advance(61 * 60_000);
    await completed(w, "recent");
    const result = await w.orchestrator.gc({ dryRun: false });
    expect(result.torn_down).toEqual(["old"]);
    expect(result.kept).toEqual([
      { name: "dirty", reason: "unsaved_changes" },
      { name: "recent", reason: "retained until 2026-01-01T02:01:00.000Z" },
    ]);
    expect(w.record("old").state).toBe("destroyed");
    expect(w.record("dirty").state).toBe("completed");
    // Warm pools of every provider are tidied.
    expect(w.provider.ops().at(-1)).toBe("collect");
  });

  it("a dry run changes nothing", async () => {
    const w = world({ config: { sandbox: { completed_retention_minutes: 0 } } });
    await completed(w, "old");
    const before = w.provider.ops().length;
    expect(await w.orchestrator.gc({ dryRun: true })).toEqual({ torn_down: ["old"], kept: [] });
    expect(w.record("old").state).toBe("completed");
    expect(w.provider.ops().slice(before)).toEqual(["endpoint"]);
  });

  it("keeps everything when auto_teardown is off", async () => {
    const w = world({ config: { sandbox: { auto_teardown: false } } });
    await completed(w, "old");
    expect((await w.orchestrator.gc({ dryRun: false })).kept).toEqual([
      { name: "old", reason: "auto_teardown is off" },
    ]);
  });

  it("a teardown that fails keeps the sandbox with its reason; a provider with nothing to collect is logged", async () => {
    const w = world({ config: { sandbox: { completed_retention_minutes: 0 } } });
    await completed(w, "old");
    w.provider.fail.set("destroy", new Error("stuck"));
    w.provider.fail.set("collect", new Error("no daemon"));
    const result = await w.orchestrator.gc({ dryRun: false });
    expect(result).toEqual({ torn_down: [], kept: [{ name: "old", reason: "internal_error" }] });
    expect(w.logger.messages("debug")).toContain("collecting the local provider's runtimes failed; going on");
  });
});
