import { execFile, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CLI, runCli } from "../../helpers/cli.ts";
import {
  type E2EEnv,
  fetchLink,
  filesContaining,
  filesUnder,
  makeEnv,
  SECRETS,
  unpackCheckpointArtifacts,
  waitFor,
} from "../env.ts";
import { providerUnderTest } from "../providers.ts";
import type { treeDigest } from "../tree.ts";

const execFileAsync = promisify(execFile);

/** Checkpoints, safe teardown, resume and export on the real stack, against each provider. */
export function durabilitySuite(kind: "local" | "docker"): void {
  const p = providerUnderTest(kind);
  let e: E2EEnv;
  let id = "";
  const alpine = (...args: string[]) => runCli(args, { env: e.env, cwd: e.cwd });
  /** The sandbox's workspace, wherever the provider keeps it. */
  const ws = () => p.workspace(e.alpineHome, id);

  /** Session ids OpenCode lists, read through sandboxd's UI proxy with a one-time login. */
  async function sessions(name: string): Promise<string[]> {
    const link = (await alpine("open", name, "--print", "--json")).json().web_url as string;
    const login = await fetchLink(link, { redirect: "manual" });
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0]!;
    const res = await fetchLink(`${new URL(link).origin}/session`, { headers: { cookie } });
    expect(res.status).toBe(200);
    return ((await res.json()) as { id: string }[]).map((s) => s.id).sort();
  }

  beforeAll(async () => {
    if (p.skipReason) return;
    e = await makeEnv({ yaml: p.yaml });
    Object.assign(e.env, p.env);
  });
  // A failed step shows what the provider's own processes were doing meanwhile.
  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail" && p.diagnostics) console.error(p.diagnostics());
  });

  afterAll(async () => {
    if (!e) return;
    for (const n of ["durable", "busy"]) await alpine("teardown", n, "--force", "--json").catch(() => {});
    await e.close();
  });

  describe.skipIf(p.skipReason)(`durability of a ${kind} sandbox`, () => {
    let before: ReturnType<typeof treeDigest>;
    let sessionsBefore: string[] = [];

    it("launches and the agent writes a file", async () => {
      const r = await alpine(
        "launch",
        "durable",
        "--repo",
        e.repoUrl,
        "--task",
        "WRITE NOTES.md from the agent",
        "--json",
      );
      expect(r.code, r.stdout + r.stderr).toBe(0);
      id = r.json().id;
      await waitFor(
        "completion",
        async () => (await alpine("status", "durable", "--json")).json().state === "completed",
        {
          timeoutMs: 90_000,
        },
      );
    });

    it("a checkpoint is verified and stored content-addressed; status then shows nothing unsaved", async () => {
      // More work of every kind: a commit on the branch, an untracked executable, nested and binary files.
      await ws().write("src/main.txt", "hello, changed\n");
      await ws().git("commit", "-qam", "agent commit");
      await ws().write("deep/er/run.sh", "#!/bin/sh\necho run\n", 0o755);
      await ws().write("blob.bin", Buffer.from([0, 1, 2, 255, 254, 0, 10, 13]));
      const r = await alpine("checkpoint", "durable", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const cp = r.json();
      expect(cp).toMatchObject({ name: "durable", verified: true });
      expect(cp.checkpoint_id).toMatch(/^ckpt_/);
      expect(cp.content_hash).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(cp.bytes).toBeGreaterThan(0);
      const stored = filesUnder(join(e.alpineHome, "checkpoints", id));
      expect(stored.some((f) => f.endsWith(join(cp.checkpoint_id, "manifest.json")))).toBe(true);
      expect(stored.filter((f) => /objects\/[0-9a-f]{64}$/.test(f)).length).toBeGreaterThanOrEqual(2);
      const status = (await alpine("status", "durable", "--json")).json();
      expect(status.durability).toMatchObject({
        checkpoint_id: cp.checkpoint_id,
        verified: true,
        content_hash: cp.content_hash,
      });
      expect(status.teardown.blockers).toEqual([]);
      // The same content checkpointed again gives the same content hash.
      const again = (await alpine("checkpoint", "durable", "--json")).json();
      expect(again.content_hash).toBe(cp.content_hash);
      expect(again.checkpoint_id).not.toBe(cp.checkpoint_id);
    });

    it("checkpoints hold no secret (extracted and searched)", async () => {
      const out = mkdtempSync(join(tmpdir(), "alpine-ckpt-"));
      const objects = filesUnder(join(e.alpineHome, "checkpoints", id)).filter((f) => /objects\//.test(f));
      unpackCheckpointArtifacts(objects, e.git.repoPath("app"), out);
      expect(filesContaining(out, [SECRETS.modelKey, SECRETS.gitToken, SECRETS.forbiddenKey])).toEqual([]);
      expect(filesUnder(out).some((f) => f.endsWith("auth.json"))).toBe(false);
      rmSync(out, { recursive: true, force: true });
    });

    it("status reports unsaved work as a blocker; teardown checkpoints it and destroys the runtime", async () => {
      await ws().write("late.txt", "written after the checkpoint\n");
      const status = (await alpine("status", "durable", "--json")).json();
      expect(status.teardown.blockers).toContain("unsaved_changes");
      before = await ws().digest();
      sessionsBefore = await sessions("durable");
      expect(sessionsBefore.length).toBeGreaterThan(0);
      const r = await alpine("teardown", "durable", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const out = r.json();
      expect(out).toMatchObject({ name: "durable", state: "destroyed", destroyed: true, forced: false });
      expect(out.checkpoint_id).toMatch(/^ckpt_/);
      expect(await p.leftovers(e.alpineHome, id)).toEqual([]);
      const events = (await alpine("logs", "durable", "--json"))
        .json()
        .events.map((x: { to: string | null }) => x.to);
      expect(events.slice(-3)).toEqual(["saving", "tearing_down", "destroyed"]);
    });

    it("export from the destroyed sandbox writes a patch from its checkpoint", async () => {
      const patch = join(e.root, "work.patch");
      const r = await alpine("export", "durable", "--patch", patch, "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json()).toMatchObject({ source: "checkpoint", pushed: false, state: "destroyed" });
      const text = readFileSync(patch, "utf8");
      expect(text).toContain("NOTES.md");
      expect(text).toContain("late.txt");
      expect(text).toContain("+hello, changed");
    });

    it("resume restores the workspace byte for byte, the branch and its commits, and the OpenCode sessions", async () => {
      const r = await alpine("launch", "durable", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json()).toMatchObject({ state: "running", resumed: true, branch: "alpine/durable" });
      id = r.json().id;
      const after = await ws().digest();
      expect(after.files).toEqual(before.files);
      expect(after.digest).toBe(before.digest);
      expect(await ws().git("rev-parse", "--abbrev-ref", "HEAD")).toBe("alpine/durable");
      expect(await ws().git("log", "--format=%s", "-1")).toBe("agent commit");
      // Untracked files are untracked again, not committed.
      expect(await ws().git("status", "--porcelain")).toContain("?? late.txt");
      expect(await sessions("durable")).toEqual(sessionsBefore);
    });

    /** The stored manifest of one of the sandbox's checkpoints, or null when it was pruned. */
    const storedManifest = (cpId: string) => {
      const path = join(e.alpineHome, "checkpoints", id, cpId, "manifest.json");
      try {
        return JSON.parse(readFileSync(path, "utf8")) as {
          checkpoint_id: string;
          artifacts: { name: string; sha256: string; bytes: number }[];
          depends_on?: { checkpoints: { checkpoint_id: string; sha256: string }[]; upstream: string[] };
        };
      } catch {
        return null;
      }
    };
    const chain: string[] = [];
    let chainDigest: ReturnType<typeof treeDigest>;

    /** sandboxd's log lines with `msg` (read through `alpine logs`). */
    const logged = async (msg: string) =>
      ((await alpine("logs", "durable", "--tail", "400", "--json")).json().lines as string[])
        .map((l) => JSON.parse(l) as { msg: string; checkpoint_id?: string })
        .filter((l) => l.msg === msg);
    const EARLY = "checkpoint bundle written before the remote answered";
    const AGAIN = "the bundle written before the remote answered does not stand; writing it again";
    /**
     * `alpine checkpoint` with the git server holding every request (the `ls-remote` that verifies
     * the upstream) until sandboxd has written the bundle on the last checkpoint: the remote's
     * answer is not waited for, and decides afterwards whether that bundle stands.
     */
    async function checkpointWhileRemoteHeld() {
      const early = (await logged(EARLY)).length;
      let release = () => {};
      const held = new Promise<void>((r) => {
        release = r;
      });
      setTimeout(() => release(), 60_000).unref(); // never a hang, whatever happens below
      let asked = 0;
      e.git.gate = () => {
        asked++;
        return held;
      };
      const run = alpine("checkpoint", "durable", "--json");
      try {
        await waitFor(
          "the bundle written while the remote is held",
          async () => (await logged(EARLY)).length > early,
          {
            timeoutMs: 30_000,
          },
        );
        expect(asked).toBeGreaterThan(0);
      } finally {
        e.git.gate = null;
        release();
      }
      const r = await run;
      expect(r.code, r.stdout + r.stderr).toBe(0);
      return r;
    }

    it("five incremental checkpoints after upstream was force-pushed: the first is self-contained, each next stores only what changed", async () => {
      const earlier = (await alpine("status", "durable", "--json")).json().durability.checkpoint_id as string;
      // Before: the sandbox's checkpoints build on upstream's commits (verified with ls-remote).
      const first = storedManifest(earlier);
      expect(first?.depends_on?.checkpoints.length).toBeGreaterThan(0);
      // Upstream's branch is rewritten to unrelated history: the commits the chain builds on are gone.
      const bare = e.git.repoPath("app");
      const main = execFileSync("git", ["--git-dir", bare, "symbolic-ref", "HEAD"]).toString().trim();
      const rewritten = execFileSync(
        "git",
        ["--git-dir", bare, "commit-tree", "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "-m", "rewritten"],
        {
          env: {
            ...process.env,
            GIT_AUTHOR_NAME: "B",
            GIT_AUTHOR_EMAIL: "b@x",
            GIT_COMMITTER_NAME: "B",
            GIT_COMMITTER_EMAIL: "b@x",
          },
        },
      )
        .toString()
        .trim();
      execFileSync("git", ["--git-dir", bare, "update-ref", main, rewritten]);
      const sizes: number[] = [];
      for (let i = 0; i < 5; i++) {
        // 48 KiB that does not compress, so what a bundle holds shows in its size.
        await ws().write(`chain/${i}.bin`, randomBytes(48 * 1024));
        if (i === 2) {
          await ws().git("add", "chain");
          await ws().git("commit", "-qm", "chain commit");
        }
        // The first two with the remote held: the bundle is written on the last checkpoint before
        // the remote answers; after the force-push that bundle must not stand, the next one does.
        const r = i < 2 ? await checkpointWhileRemoteHeld() : await alpine("checkpoint", "durable", "--json");
        expect(r.code, r.stdout + r.stderr).toBe(0);
        const m = storedManifest(r.json().checkpoint_id)!;
        chain.push(m.checkpoint_id);
        if (i < 2) {
          const again = (await logged(AGAIN)).some((l) => l.checkpoint_id === m.checkpoint_id);
          expect(again).toBe(i === 0);
        }
        sizes.push(m.artifacts.find((a) => a.name === "workspace.bundle")!.bytes);
        if (i === 0) {
          // Found at checkpoint time: it builds on nothing that is gone.
          expect(m.depends_on).toBeUndefined();
        } else {
          expect(m.depends_on?.checkpoints.map((c) => c.checkpoint_id)).toEqual(chain.slice(0, i));
          expect(m.depends_on?.upstream).toEqual([]);
        }
      }
      // Each later bundle holds its one new file (and the checkpoint commit), not the files before it.
      for (const bytes of sizes.slice(1)) expect(bytes).toBeLessThan(48 * 1024 + 8 * 1024);
      expect(sizes[0]).toBeGreaterThan(48 * 1024);
    });

    it("a pruned link never breaks a kept checkpoint; resume from the chain of 5 is byte for byte", async () => {
      // keep_checkpoints (5) keeps this chain; everything before it is pruned, nothing it needs.
      const stored = filesUnder(join(e.alpineHome, "checkpoints", id))
        .filter((f) => f.endsWith("manifest.json"))
        .map((f) => JSON.parse(readFileSync(f, "utf8")).checkpoint_id as string);
      expect(stored.sort()).toEqual([...chain].sort());
      for (const cp of stored) {
        for (const dep of storedManifest(cp)?.depends_on?.checkpoints ?? []) {
          expect(
            storedManifest(dep.checkpoint_id)?.artifacts.find((a) => a.name === "workspace.bundle")?.sha256,
          ).toBe(dep.sha256);
        }
      }
      chainDigest = await ws().digest();
      const t = await alpine("teardown", "durable", "--json");
      expect(t.code, t.stdout + t.stderr).toBe(0);
      const r = await alpine("launch", "durable", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json()).toMatchObject({ state: "running", resumed: true });
      id = r.json().id;
      const after = await ws().digest();
      expect(after.files).toEqual(chainDigest.files);
      expect(after.digest).toBe(chainDigest.digest);
      expect(await ws().git("log", "--format=%s", "-1")).toBe("chain commit");
      expect(await ws().git("status", "--porcelain")).toContain("?? chain/4.bin");
    });

    it("a corrupted middle checkpoint of the chain is never restored: checkpoint_checksum_mismatch names it", async () => {
      const t = await alpine("teardown", "durable", "--json");
      expect(t.code, t.stdout + t.stderr).toBe(0);
      const middle = chain[2]!;
      const bundle = storedManifest(middle)!.artifacts.find((a) => a.name === "workspace.bundle")!;
      const obj = join(e.alpineHome, "checkpoints", id, "objects", bundle.sha256);
      const original = readFileSync(obj);
      const bytes = Buffer.from(original);
      bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
      writeFileSync(obj, bytes);
      const r = await alpine("launch", "durable", "--json");
      expect(r.code).toBe(1);
      expect(r.json()).toMatchObject({
        reason_code: "checkpoint_checksum_mismatch",
        details: { checkpoint_id: middle, artifact: "workspace.bundle" },
      });
      expect(r.json().error).toContain(middle);
      expect(await p.leftovers(e.alpineHome, id)).toEqual([]);
      // Repaired, the same chain restores (the tests after this one need the sandbox running).
      writeFileSync(obj, original);
      const again = await alpine("launch", "durable", "--json");
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect((await ws().digest()).digest).toBe(chainDigest.digest);
    });

    it("export pushes a branch whose tree holds the agent's files and whose head is the reported commit; the lease is held meanwhile", async () => {
      const db = new Database(join(e.alpineHome, "state.db"), { readonly: true });
      // The push is held at the git server until the concurrent teardown has answered, so the
      // export still holds its lease then however fast the rest of it is.
      let release = () => {};
      const pushHeld = new Promise<void>((r) => {
        release = r;
      });
      setTimeout(() => release(), 60_000).unref(); // never a hang, whatever happens below
      e.git.gate = (q) => (q.method === "POST" && q.path.endsWith("/git-receive-pack") ? pushHeld : null);
      const child = spawn(process.execPath, [CLI, "export", "durable", "--json"], {
        cwd: e.cwd,
        env: { PATH: process.env.PATH, NO_COLOR: "1", ...e.env },
      });
      let stdout = "";
      child.stdout.on("data", (d) => (stdout += d));
      const done = new Promise<number>((resolve) => child.once("exit", (c) => resolve(c ?? -1)));
      let seen: { type: string; pid: number } | null = null;
      let concurrent: { code: number; reason: string } | null = null;
      while (child.exitCode === null) {
        const row = db.prepare("SELECT lease FROM leases WHERE name = 'durable'").get() as
          | { lease: string }
          | undefined;
        if (row && !seen) {
          seen = JSON.parse(row.lease);
          const t = await alpine("teardown", "durable", "--json");
          concurrent = { code: t.code, reason: t.json().reason_code };
          release();
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      release();
      e.git.gate = null;
      expect(await done).toBe(0);
      db.close();
      expect(seen).toMatchObject({ type: "export", pid: child.pid });
      expect(concurrent).toEqual({ code: 2, reason: "operation_in_progress" });
      const out = JSON.parse(stdout);
      expect(out).toMatchObject({
        name: "durable",
        source: "workspace",
        pushed: true,
        branch: "alpine/durable",
      });
      expect(await e.git.readRef("app", "refs/heads/alpine/durable")).toBe(out.commit);
      const files = await e.git.listFiles("app", out.commit);
      expect(files).toEqual(expect.arrayContaining(["NOTES.md", "late.txt", "deep/er/run.sh", "blob.bin"]));
      expect(await e.git.readFile("app", out.commit, "src/main.txt")).toBe("hello, changed\n");
      const status = (await alpine("status", "durable", "--json")).json();
      expect(status.export).toMatchObject({ branch: "alpine/durable", commit: out.commit });
      expect(status.teardown.blockers).toEqual([]);
    });

    it("a rejected push is push_rejected with git's reason", async () => {
      // Someone else owns branch 'taken' on the remote with unrelated history: a non-fast-forward push.
      const other = mkdtempSync(join(tmpdir(), "alpine-other-"));
      const auth = Buffer.from(`alice:${SECRETS.gitToken}`).toString("base64");
      const env = {
        ...process.env,
        GIT_CONFIG_COUNT: "1",
        GIT_CONFIG_KEY_0: "http.extraHeader",
        GIT_CONFIG_VALUE_0: `Authorization: Basic ${auth}`,
      };
      // Async: the git server runs in this process, so a synchronous git would deadlock against it.
      const run = (...args: string[]) => execFileAsync("git", args, { cwd: other, env });
      await run("init", "-q", "-b", "taken");
      writeFileSync(join(other, "x.txt"), "someone else\n");
      await run("add", ".");
      await run("-c", "user.name=Bob", "-c", "user.email=b@x", "commit", "-qm", "unrelated");
      await run("push", "-q", e.repoUrl, "taken:refs/heads/taken");
      const r = await alpine("export", "durable", "--branch", "taken", "--json");
      expect(r.code, r.stdout).toBe(1);
      expect(r.json().reason_code).toBe("push_rejected");
      expect(JSON.stringify(r.json().details)).toMatch(/rejected|fast-forward|fetch first/);
      rmSync(other, { recursive: true, force: true });
    });

    it("bad branch names are refused before anything runs", async () => {
      for (const branch of ["refs/heads/x", "a..b", "-x", "x.lock", "a b", "HEAD", "x~1"]) {
        const r = await alpine("export", "durable", `--branch=${branch}`, "--json");
        expect(r.json().reason_code, branch).toBe("branch_invalid");
      }
    });

    it("teardown of a busy agent needs --force", async () => {
      const r = await alpine("task", "durable", "SLEEP 8000 WRITE busy.md still working", "--json");
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const t = await alpine("teardown", "durable", "--json");
      expect(t.code).toBe(1);
      expect(t.json()).toMatchObject({ reason_code: "teardown_requires_force" });
      expect((await alpine("status", "durable", "--json")).json().state).toBe("running");
    });

    it("a checkpoint with one corrupted byte is never restored: checkpoint_checksum_mismatch names the artifact", async () => {
      const t = await alpine("teardown", "durable", "--force", "--json");
      expect(t.code, t.stdout + t.stderr).toBe(0);
      const status = (await alpine("status", "durable", "--json")).json();
      const cpId = status.durability.checkpoint_id as string;
      const manifest = JSON.parse(
        readFileSync(join(e.alpineHome, "checkpoints", id, cpId, "manifest.json"), "utf8"),
      );
      const bundle = manifest.artifacts.find((a: { name: string }) => a.name.endsWith(".bundle"));
      const obj = join(e.alpineHome, "checkpoints", id, "objects", bundle.sha256);
      const bytes = readFileSync(obj);
      const at = Math.floor(bytes.length / 2);
      bytes[at] = (bytes[at] ?? 0) ^ 0xff;
      writeFileSync(obj, bytes);
      const r = await alpine("launch", "durable", "--json");
      expect(r.code).toBe(1);
      expect(r.json()).toMatchObject({
        reason_code: "checkpoint_checksum_mismatch",
        details: { artifact: bundle.name },
      });
      expect(r.json().error).toContain(bundle.name);
      expect(await p.leftovers(e.alpineHome, id)).toEqual([]);
    });
  });
}
