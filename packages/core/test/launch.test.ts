import { describe, expect, it } from "vitest";
import { AlpineError } from "../src/index.ts";
import { launched, REPO, world } from "./fakes/world.ts";

describe("launch", () => {
  it("creates a new sandbox: new → provisioning → running, cloned with the host's credentials", async () => {
    const w = world();
    const result = await w.orchestrator.launch({ name: "box", repo: REPO });
    expect(result).toMatchObject({ reused: false, resumed: false, task_accepted: false, session_id: null });
    const record = w.record();
    expect(record.state).toBe("running");
    expect(record.branch).toBe("alpine/box");
    expect(record.runtime?.web_url).toBe(`fake://rt_${record.id}`);
    expect(w.store.transitions("box")).toEqual(["new→provisioning", "provisioning→running"]);
    expect(w.store.notes("box")).toEqual([`created for ${REPO}`]);
    const sandboxd = w.provider.sandboxd(record.id);
    expect(sandboxd.inits).toEqual([
      { repo: REPO, branch: "alpine/box", credentials: w.credentials, skip_setup: false },
    ]);
    // Told what comes next, so it can start OpenCode early.
    expect(w.provider.calls.find((c) => c.op === "start")?.intent).toEqual({ init_repo: REPO });
    expect(w.provider.ops()).toEqual(["preflight", "create", "start", "endpoint"]);
    expect(w.steps).toEqual([
      "launch.lease_acquired",
      "launch.provisioning",
      "launch.runtime_created",
      "launch.runtime_started",
      "launch.cloning",
      "launch.agent_starting",
      "launch.running",
    ]);
    // The lease is released and its renewal stopped.
    expect(w.store.leases.size).toBe(0);
    expect(w.clock.activeTimers).toBe(0);
  });

  it("starts the runtime with the secrets of the sandbox's repo (none when the host has no store)", async () => {
    const w = world();
    const asked: string[] = [];
    w.deps.secretsFor = async (repo) => {
      asked.push(repo);
      return [{ name: "NPM_TOKEN", value: "v", agent: false }];
    };
    await w.orchestrator.launch({ name: "box", repo: REPO });
    expect(asked).toEqual([REPO]);
    expect(w.provider.startedSpecs.at(-1)?.secrets).toEqual([
      { name: "NPM_TOKEN", value: "v", agent: false },
    ]);
    // Never in the stored record.
    expect(JSON.stringify(w.record())).not.toContain("NPM_TOKEN");

    const bare = world();
    await bare.orchestrator.launch({ name: "box", repo: REPO });
    expect(bare.provider.startedSpecs.at(-1)?.secrets).toEqual([]);
  });

  it("hands the agent a task given at launch", async () => {
    const w = world();
    const result = await w.orchestrator.launch({
      name: "box",
      repo: REPO,
      task: "Fix the bug\nin detail",
      ref: "main",
    });
    expect(result).toMatchObject({ task_accepted: true, session_id: "ses_1" });
    const record = w.record();
    expect(record.agent).toBe("busy");
    expect(record.task).toMatchObject({
      prompt_summary: "Fix the bug",
      session_id: "ses_1",
      finished_at: null,
    });
    expect(w.provider.sandboxd(record.id).inits[0]?.ref).toBe("main");
  });

  it("reuses a running sandbox whose sandboxd answers ready", async () => {
    const w = world();
    await launched(w);
    const before = w.provider.ops().length;
    const result = await w.orchestrator.launch({ name: "box" });
    expect(result).toMatchObject({ reused: true, resumed: false });
    expect(w.provider.ops().slice(before)).toEqual(["endpoint"]);
    expect(w.store.transitions("box")).toEqual(["new→provisioning", "provisioning→running"]);
  });

  it("gives a completed sandbox a new task: completed → running", async () => {
    const w = world();
    await launched(w, "box", { task: "one" });
    const id = w.record().id;
    w.provider.sandboxd(id).finishTask();
    await w.orchestrator.waitForTask("box");
    const result = await w.orchestrator.launch({ name: "box", task: "two" });
    expect(result).toMatchObject({ reused: true, task_accepted: true, session_id: "ses_1" });
    expect(w.store.transitions("box").slice(-2)).toEqual(["running→completed", "completed→running"]);
  });

  it("recovers a runtime that stopped: running → error → provisioning → running, reusing the kept workspace", async () => {
    const w = world();
    const record = await launched(w);
    const sandboxd = w.provider.sandboxd(record.id);
    sandboxd.edit("src/a.ts");
    w.provider.crash(record.id);
    const result = await w.orchestrator.launch({ name: "box" });
    expect(result).toMatchObject({ reused: false, resumed: false });
    expect(w.store.transitions("box").slice(2)).toEqual([
      "running→error",
      "error→provisioning",
      "provisioning→running",
    ]);
    expect(w.store.log.find((e) => e.to === "error")?.reason).toBe("runtime unavailable; recovering");
    // The workspace the provider kept is adopted (same edits), not cloned afresh.
    expect(sandboxd.workspace?.changed_files).toEqual([{ path: "src/a.ts", status: "modified" }]);
    expect(w.record().error).toBeNull();
  });

  it("resumes a destroyed sandbox from its verified checkpoint when the workspace is gone", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.sandboxd(record.id).edit("src/a.ts");
    const teardown = await w.orchestrator.teardown("box", { force: false });
    expect(teardown).toMatchObject({ destroyed: true });
    const checkpointId = teardown.checkpoint_id!;
    expect(checkpointId).toMatch(/^ckpt_/);

    const result = await w.orchestrator.launch({ name: "box" });
    expect(result).toMatchObject({ resumed: true, reused: false });
    const sandboxd = w.provider.sandboxd(record.id);
    expect(sandboxd.restoredFrom?.checkpoint_id).toBe(checkpointId);
    expect(sandboxd.calls).toEqual(["putRestoreArtifact", "putRestoreArtifact", "restore"]);
    // No init intent; the checkpoint's OpenCode data, so a provider may start OpenCode on it early.
    const data = sandboxd.restoredFrom?.artifacts.find((a) => a.name === "opencode-data.tar.gz");
    expect(w.provider.calls.filter((c) => c.op === "start").at(-1)?.intent).toEqual({
      restore_opencode_data: { sha256: data?.sha256, bytes: data?.bytes },
    });
    expect(data?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(w.store.log.at(-1)?.reason).toBe(`restored ${checkpointId}`);
    expect(w.steps).toContain("launch.restoring");
  });

  it("a checkpoint that builds on upstream: the host's credentials are asked while the runtime starts, not after staging", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.sandboxd(record.id).edit("src/a.ts");
    const { checkpoint_id } = await w.orchestrator.teardown("box", { force: false });
    // As sandboxd writes a thin first checkpoint of a clone: it builds on the remote's branch tip.
    const upstream = "c".repeat(40);
    const m = (await w.deps.checkpoints.getManifest(record.id, checkpoint_id!))!;
    await w.deps.checkpoints.putManifest({
      ...m,
      depends_on: { checkpoints: [], upstream: [upstream], prerequisites: [upstream] },
    });
    // What the new runtime's sandboxd had been asked when the credential helper was.
    const askedAfter: string[][] = [];
    w.deps.credentialsFor = async () => {
      askedAfter.push([...w.provider.sandboxd(record.id).calls]);
      return w.credentials;
    };
    const result = await w.orchestrator.launch({ name: "box" });
    expect(result).toMatchObject({ resumed: true });
    expect(askedAfter).toEqual([[]]);
    const sandboxd = w.provider.sandboxd(record.id);
    expect(sandboxd.calls).toEqual(["putRestoreArtifact", "putRestoreArtifact", "restore"]);
    expect(sandboxd.restoredWithCredentials).toEqual(w.credentials);
  });

  it("resumes from a chain of checkpoints: every link staged oldest first, then the newest", async () => {
    const w = world();
    const record = await launched(w);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      w.clock.advance(1000);
      w.provider.sandboxd(record.id).edit(`f${i}.txt`);
      ids.push((await w.orchestrator.checkpoint("box")).manifest.checkpoint_id);
    }
    await w.orchestrator.teardown("box", { force: false });
    const staged: string[] = [];
    const result = await w.orchestrator.launch({ name: "box" });
    expect(result).toMatchObject({ resumed: true });
    const sandboxd = w.provider.sandboxd(record.id);
    staged.push(...sandboxd.staged.keys());
    expect(sandboxd.restoredFrom?.checkpoint_id).toBe(ids[4]);
    expect(sandboxd.restoredChain).toEqual(ids.slice(0, 4));
    expect(staged).toEqual([
      ...ids.slice(0, 4).map((id) => `link.${id}.bundle`),
      "workspace.bundle",
      "opencode-data.tar.gz",
    ]);
  });

  it("a corrupted middle link refuses the restore before anything starts, naming that checkpoint", async () => {
    const w = world();
    const record = await launched(w);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      w.clock.advance(1000);
      ids.push((await w.orchestrator.checkpoint("box")).manifest.checkpoint_id);
    }
    await w.orchestrator.teardown("box", { force: false });
    w.checkpoints.corrupt(record.id, ids[2]!, "workspace.bundle");
    const starts = w.provider.calls.filter((c) => c.op === "start").length;
    await expect(w.orchestrator.launch({ name: "box" })).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
      details: { checkpoint_id: ids[2], artifact: "workspace.bundle" },
    });
    expect(w.provider.calls.filter((c) => c.op === "start").length).toBe(starts);
  });

  it("a link missing from the store refuses the restore: checkpoint_missing naming it", async () => {
    const w = world();
    const record = await launched(w);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      w.clock.advance(1000);
      ids.push((await w.orchestrator.checkpoint("box")).manifest.checkpoint_id);
    }
    await w.orchestrator.teardown("box", { force: false });
    // Not through retention (which never prunes a link): as if the store lost it.
    w.checkpoints.sandboxes.get(record.id)?.delete(ids[0]!);
    await expect(w.orchestrator.launch({ name: "box" })).rejects.toMatchObject({
      reason: "checkpoint_missing",
      details: { checkpoint_id: ids[0] },
    });
  });

  it("clones again when the provider kept the workspace of an errored sandbox with a checkpoint", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.sandboxd(record.id).edit("a");
    await w.orchestrator.checkpoint("box");
    w.provider.crash(record.id);
    await w.orchestrator.launch({ name: "box" });
    expect(w.provider.sandboxd(record.id).restoredFrom).toBeNull();
    expect(w.provider.sandboxd(record.id).inits).toHaveLength(2);
  });

  it("refuses a damaged checkpoint before starting anything", async () => {
    const w = world();
    const record = await launched(w);
    w.provider.sandboxd(record.id).edit("a");
    const { checkpoint_id } = await w.orchestrator.teardown("box", { force: false });
    w.checkpoints.corrupt(record.id, checkpoint_id!, "workspace.bundle");
    const before = w.provider.ops().length;
    await expect(w.orchestrator.launch({ name: "box" })).rejects.toMatchObject({
      reason: "checkpoint_checksum_mismatch",
    });
    expect(w.provider.ops().slice(before)).toEqual([]);
    expect(w.record().state).toBe("destroyed");
  });

  it("a failed start leaves the sandbox in error with the reason, and stops the runtime; a retry works", async () => {
    const w = world();
    w.provider.fail.set("start", new AlpineError("agent_start_failed", "sandboxd did not start"));
    await expect(w.orchestrator.launch({ name: "box", repo: REPO })).rejects.toMatchObject({
      reason: "agent_start_failed",
    });
    const failed = w.record();
    expect(failed.state).toBe("error");
    expect(failed.error?.reason_code).toBe("agent_start_failed");
    expect(w.store.log.at(-1)?.reason).toBe("launch failed: agent_start_failed");
    expect(w.provider.ops().at(-1)).toBe("stop");

    w.provider.fail.delete("start");
    const retry = await w.orchestrator.launch({ name: "box" });
    expect(retry).toMatchObject({ resumed: true });
    expect(w.record()).toMatchObject({ state: "running", error: null });
  });

  it("a runtime without an endpoint after start is agent_start_failed", async () => {
    const w = world();
    w.provider.endpoint = async () => null;
    await expect(w.orchestrator.launch({ name: "box", repo: REPO })).rejects.toMatchObject({
      reason: "agent_start_failed",
    });
    expect(w.record().state).toBe("error");
  });

  it("logs a stop that fails while cleaning up a failed launch, and still reports the launch's error", async () => {
    const w = world();
    w.provider.fail.set("endpoint", new Error("daemon gone"));
    w.provider.fail.set("stop", new Error("cannot stop"));
    await expect(w.orchestrator.launch({ name: "box", repo: REPO })).rejects.toMatchObject({
      reason: "internal_error",
    });
    expect(w.logger.lines).toContainEqual(
      expect.objectContaining({
        level: "warn",
        message: "stopping the failed runtime of 'box' failed; going on",
      }),
    );
  });

  it("needs --repo to create, and a known image profile", async () => {
    const w = world();
    await expect(w.orchestrator.launch({ name: "box" })).rejects.toMatchObject({
      reason: "repo_resolution_failed",
    });
    await expect(
      w.orchestrator.launch({ name: "box", repo: REPO, image_profile: "huge" }),
    ).rejects.toMatchObject({
      reason: "image_profile_unknown",
      details: { known: ["default"] },
    });
    await expect(w.orchestrator.launch({ name: "Bad Name", repo: REPO })).rejects.toMatchObject({
      reason: "name_invalid",
    });
    await expect(w.orchestrator.launch({ name: "box", repo: REPO, ref: "-x" })).rejects.toBeInstanceOf(
      AlpineError,
    );
    expect(w.store.records.size).toBe(0);
  });

  it("a profile removed from the config after creation is image_profile_unknown at provisioning", async () => {
    const w = world({ config: { sandbox: { image_profiles: { default: "img", big: "img-big" } } } });
    await w.orchestrator.launch({ name: "box", repo: REPO, image_profile: "big" });
    await w.orchestrator.teardown("box", { force: true });
    delete w.deps.config.sandbox.image_profiles.big;
    w.deps.config.sandbox.image_profile = "default";
    await expect(w.orchestrator.launch({ name: "box" })).rejects.toMatchObject({
      reason: "image_profile_unknown",
    });
  });

  it("a preflight failure leaves no sandbox behind", async () => {
    const w = world();
    w.provider.fail.set("preflight", new AlpineError("image_not_found", "build it"));
    await expect(w.orchestrator.launch({ name: "box", repo: REPO })).rejects.toMatchObject({
      reason: "image_not_found",
    });
    expect(w.store.records.size).toBe(0);
  });

  it("refuses another identity, and replaces the sandbox with --force-recreate", async () => {
    const w = world();
    const first = await launched(w);
    await expect(
      w.orchestrator.launch({ name: "box", repo: "https://github.test/other.git" }),
    ).rejects.toMatchObject({
      reason: "sandbox_identity_conflict",
      details: { existing: { repo: REPO } },
    });
    const result = await w.orchestrator.launch({
      name: "box",
      repo: "https://github.test/other.git",
      force_recreate: true,
    });
    expect(result.record.id).not.toBe(first.id);
    expect(result.record.repo).toBe("https://github.test/other.git");
    expect(w.provider.runtimes.has(`rt_${first.id}`)).toBe(false);
  });

  it("--force-recreate loses to a command that wrote the record after the teardown", async () => {
    const w = world();
    await launched(w);
    w.store.remove = async () => false;
    await expect(
      w.orchestrator.launch({ name: "box", repo: "https://github.test/other.git", force_recreate: true }),
    ).rejects.toMatchObject({ reason: "operation_in_progress" });
    expect(w.record()).toMatchObject({ repo: REPO, state: "destroyed" });
  });

  it("a record changed by another command meanwhile is operation_in_progress", async () => {
    const w = world();
    await launched(w);
    w.provider.crash(w.record().id);
    w.store.beforePut = (record) => {
      w.store.beforePut = null;
      const stored = w.store.records.get(record.name)!;
      w.store.records.set(record.name, { ...stored, version: stored.version + 1 });
    };
    await expect(w.orchestrator.launch({ name: "box" })).rejects.toMatchObject({
      reason: "operation_in_progress",
    });
  });

  it("two creations of one name: the second is refused", async () => {
    const w = world();
    w.store.beforePut = async (record) => {
      w.store.beforePut = null;
      w.store.records.set(record.name, { ...record, id: "sbx_other" });
    };
    await expect(w.orchestrator.launch({ name: "box", repo: REPO })).rejects.toMatchObject({
      reason: "operation_in_progress",
    });
  });
});
