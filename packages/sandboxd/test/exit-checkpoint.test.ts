import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stubOpencodeConfig } from "../../../test/e2e/fixtures/stub-model.ts";
import {
  git,
  makeBareRepo,
  readLog,
  sandboxdsOfThisFile,
  stubModelOfThisSuite,
  tempDir,
  waitFor,
  waitTask,
} from "./helpers.ts";

/**
 * A rollout replaces a Cloudflare Container: SIGTERM, then a fresh disk. With `exit_checkpoint`,
 * sandboxd saves unsaved work on SIGTERM as a checkpoint the control plane copies with its
 * ordinary checkpoint code (status → artifacts → DELETE), and exits once it is taken. Real
 * sandboxd, git and OpenCode; the stub model keeps the agent busy (SLEEP) while the signal comes.
 */
const model = stubModelOfThisSuite();
const start = sandboxdsOfThisFile();

async function sandboxdWithAgent(holdMs: number) {
  const { model: m, config } = stubOpencodeConfig(model.stub.baseURL);
  const sbx = await start({
    opencode: { model: m, config, auth: { stub: { type: "api", key: model.apiKey } } },
    exit_checkpoint: { hold_ms: holdMs },
  });
  await sbx.client.init({ repo: makeBareRepo(), branch: "alpine/exit" });
  return sbx;
}

const sha256 = (buf: Buffer) => createHash("sha256").update(buf).digest("hex");

describe("checkpoint on SIGTERM (exit_checkpoint)", () => {
  it("a busy sandbox with unsaved work: SIGTERM writes a complete checkpoint, holds it until the control plane takes it, then exits", async () => {
    const sbx = await sandboxdWithAgent(120_000);
    await sbx.client.task({ prompt: "WRITE WORK.md written by the agent before the rollout" });
    await waitTask(sbx.client);
    // The agent is busy on its next turn when the platform's SIGTERM arrives.
    await sbx.client.task({ prompt: "SLEEP 600000 WRITE LATER.md never" });
    await waitFor(async () => (await sbx.client.status()).agent.state === "busy");
    sbx.child.kill("SIGTERM");

    // The API stays up and reports the checkpoint, as the control plane's probe would see it.
    const manifest = await waitFor(async () => (await sbx.client.status()).exit_checkpoint, 60_000);
    expect(manifest.checkpoint_id).toMatch(/^ckpt_exit_/);
    expect(manifest.artifacts.map((a) => a.name).sort()).toEqual([
      "opencode-data.tar.gz",
      "workspace.bundle",
    ]);
    // Complete: every artifact is there with the size and sha256 the manifest says.
    const dir = tempDir("alpine-exit-ckpt-");
    for (const artifact of manifest.artifacts) {
      const body = Buffer.from(
        await new Response(
          await sbx.client.checkpointArtifact(manifest.checkpoint_id, artifact.name),
        ).arrayBuffer(),
      );
      expect(body.length, artifact.name).toBe(artifact.bytes);
      expect(sha256(body), artifact.name).toBe(artifact.sha256);
      writeFileSync(join(dir, artifact.name), body);
    }
    // The work is in it: the bundle's checkpoint commit holds the agent's file.
    git(dir, "init", "-q", "restored");
    const restored = join(dir, "restored");
    // The bundle is thin when the repo's upstream holds what it builds on (manifest.depends_on):
    // a restore fetches those commits from the repo first, and so does this check.
    if ((manifest.depends_on?.upstream.length ?? 0) > 0) {
      const origin = git(sbx.dirs.workspace, "remote", "get-url", "origin").trim();
      git(restored, "fetch", "-q", origin, "+refs/heads/*:refs/upstream/*");
    }
    git(restored, "fetch", "-q", join(dir, "workspace.bundle"), `+refs/*:refs/*`);
    expect(git(restored, "show", `${manifest.checkpoint_commit}:WORK.md`)).toContain("written by the agent");
    expect(sbx.child.exitCode).toBeNull();

    // The control plane drops sandboxd's copy once its own is verified: sandboxd exits.
    await sbx.client.deleteCheckpoint(manifest.checkpoint_id);
    expect(await sbx.exited).toBe(0);
    const log = readLog(sbx.dirs.log);
    expect(log).toContain('"msg":"exit checkpoint taken"');
    expect(log).toContain('"msg":"stopped"');
  });

  it("nothing unsaved: SIGTERM exits at once, without a checkpoint", async () => {
    const sbx = await sandboxdWithAgent(120_000);
    sbx.child.kill("SIGTERM");
    expect(await sbx.exited).toBe(0);
    expect(readLog(sbx.dirs.log)).not.toContain("exit checkpoint");
  });
});
