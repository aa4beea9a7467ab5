import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type CliResult, runCli } from "../../helpers/cli.ts";
import { type E2EEnv, makeEnv } from "../env.ts";
import { providerUnderTest } from "../providers.ts";

/**
 * Overlap warnings (docs/cli.md, "Overlaps"): two sandboxes on one repository, reached by two
 * URL forms (`…/app.git` and `…/app`), whose agents edit the same file. `status` (which probes)
 * and `list` (which reads the records only) name the other sandbox and the file, in text and
 * JSON; `export` warns before pushing over the other's unexported work, and once that work is
 * exported the other's export no longer warns. Through the control plane each sandbox object
 * stores only its own record: status and export read the others' work from the registry.
 */
export function overlapsSuite(kind: "local" | "cloudflare"): void {
  const p = providerUnderTest(kind);
  let e: E2EEnv;
  const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd, timeoutMs: 120_000 });

  /** A command that failed with a retryable error (OpenCode slow to answer on a loaded machine) is run again. */
  async function retrying(...args: string[]): Promise<CliResult> {
    for (let attempt = 1; ; attempt++) {
      const r = await alpine(...args);
      if (r.code === 0 || !/"retryable": true/.test(r.stdout) || attempt === 3) return r;
    }
  }

  beforeAll(async () => {
    e = await makeEnv({ yaml: p.yaml });
    Object.assign(e.env, p.env);
    await p.start?.(e);
    const sameRepoOtherForm = e.repoUrl.replace(/\.git$/, "");
    expect(sameRepoOtherForm).not.toBe(e.repoUrl);
    // One after the other: two OpenCodes starting at once on a loaded 2-core machine are slow to answer.
    for (const [name, repo] of [
      ["ov-a", e.repoUrl],
      ["ov-b", sameRepoOtherForm],
    ] as const) {
      const r = await alpine("launch", name, "--repo", repo, "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      // task --wait probes the workspace at the end (as status does) and keeps its changed files on the record.
      const t = await retrying("task", name, "--wait", "--json", `WRITE shared.md from ${name}`);
      expect(t.code, t.stdout + t.stderr).toBe(0);
      expect(t.json().state).toBe("completed");
    }
  }, 300_000);

  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail" && p.diagnostics) console.error(p.diagnostics());
  });

  afterAll(async () => {
    if (!e) return;
    await Promise.all(
      ["ov-a", "ov-b"].map((n) => alpine("teardown", n, "--force", "--json").catch(() => {})),
    );
    await p.stop?.();
    await e.close();
  });

  describe("overlap warnings", () => {
    it("status names the other sandbox and the shared file (JSON and text)", async () => {
      const json = await alpine("status", "ov-a", "--json");
      expect(json.code, json.stderr).toBe(0);
      expect(json.json().overlaps).toEqual([{ name: "ov-b", files: ["shared.md"] }]);
      const text = await alpine("status", "ov-b");
      expect(text.stdout).toMatch(/overlap\s+with ov-a: shared\.md/);
    });

    it("list names them from the records alone (JSON and text)", async () => {
      const json = await alpine("list", "--json");
      expect(json.code, json.stderr).toBe(0);
      const items = json.json() as { name: string; overlaps: unknown; changed_files: string[] }[];
      const byName = Object.fromEntries(items.map((i) => [i.name, i]));
      expect(byName["ov-a"]).toMatchObject({
        changed_files: ["shared.md"],
        overlaps: [{ name: "ov-b", files: ["shared.md"] }],
      });
      expect(byName["ov-b"]?.overlaps).toEqual([{ name: "ov-a", files: ["shared.md"] }]);
      const text = await alpine("list");
      expect(text.stdout).toContain("overlap: ov-a and ov-b both changed shared.md");
    });

    it("export warns about the other's unexported work, and not once it is exported", async () => {
      const first = await alpine("export", "ov-a", "--json");
      expect(first.code, first.stdout + first.stderr).toBe(0);
      expect(first.json()).toMatchObject({
        pushed: true,
        overlaps: [{ name: "ov-b", files: ["shared.md"] }],
      });
      expect(first.stderr).toMatch(/warning:.*'ov-b'.*shared\.md/);

      const second = await alpine("export", "ov-b", "--json");
      expect(second.code, second.stdout + second.stderr).toBe(0);
      expect(second.json()).toMatchObject({ pushed: true, overlaps: [] });
      expect(second.stderr).not.toContain("warning:");
      // After an export the sandbox is torn down (sandbox.auto_teardown): list no longer flags the pair.
      const items = (await alpine("list", "--json")).json() as {
        name: string;
        state: string;
        overlaps: unknown[];
      }[];
      const a = items.find((i) => i.name === "ov-a");
      expect(a?.state).toBe(first.json().auto_tore_down ? "destroyed" : "completed");
      expect(a?.overlaps).toHaveLength(first.json().auto_tore_down ? 0 : 1);
    });
  });
}
