import { existsSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { newSandboxRecord, type SandboxRecord } from "@alpine/core";
import { describe, expect, it } from "vitest";
import { runCli } from "../../../test/helpers/cli.ts";
import { SqliteStateStore } from "../src/store/sqlite-store.ts";

/**
 * `alpine gc` prunes the notification ledgers ($ALPINE_HOME/notify/<id>.json) of local sandboxes
 * that are destroyed (or no longer in the state) and untouched for 14 days; a live sandbox's
 * ledger and a recent one are kept (a resume within the retention must not notify again).
 */
function record(name: string, state: SandboxRecord["state"]): SandboxRecord {
  return {
    ...newSandboxRecord(
      {
        id: `sbx-${name}`,
        name,
        provider: "local",
        repo: "/var/tmp/repo",
        ref: null,
        branch: `alpine/${name}`,
        image_profile: "default",
      },
      new Date().toISOString(),
    ),
    state,
  };
}

describe("alpine gc: notification ledgers", () => {
  it("prunes the ledgers of sandboxes destroyed 14 days ago or gone, keeps the others; --dry-run only says so", async () => {
    mkdirSync("/var/tmp/alpine-tests", { recursive: true });
    const home = mkdtempSync("/var/tmp/alpine-tests/gc-notify-");
    const store = new SqliteStateStore(join(home, "state.db"));
    for (const [name, state] of [
      ["old-destroyed", "destroyed"],
      ["new-destroyed", "destroyed"],
      ["old-suspended", "suspended"],
    ] as const) {
      expect(await store.put(record(name, state), null, [])).toBe(true);
    }
    store.close();
    const dir = join(home, "notify");
    mkdirSync(dir, { recursive: true });
    const old = new Date(Date.now() - 15 * 86_400_000);
    const files = {
      "sbx-old-destroyed.json": old,
      "sbx-new-destroyed.json": new Date(),
      "sbx-old-suspended.json": old,
      "sbx-orphan.json": old,
      "sbx-orphan.json.4242.tmp": old,
    };
    for (const [f, at] of Object.entries(files)) {
      writeFileSync(join(dir, f), '{"entries":{}}');
      utimesSync(join(dir, f), at, at);
    }
    const env = { ALPINE_HOME: home };
    const dry = await runCli(["gc", "--dry-run", "--json"], { env });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.json().notify_ledgers_pruned).toEqual(["sbx-old-destroyed", "sbx-orphan"]);
    for (const f of Object.keys(files)) expect(existsSync(join(dir, f))).toBe(true);

    const r = await runCli(["gc", "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().notify_ledgers_pruned).toEqual(["sbx-old-destroyed", "sbx-orphan"]);
    expect(Object.keys(files).filter((f) => existsSync(join(dir, f)))).toEqual([
      "sbx-new-destroyed.json",
      "sbx-old-suspended.json",
    ]);
    writeFileSync(join(dir, "sbx-later.json"), "{}");
    utimesSync(join(dir, "sbx-later.json"), old, old);
    const text = await runCli(["gc"], { env });
    expect(text.stdout).toContain("pruned notification ledgers of destroyed sandboxes: sbx-later");
  });
});
