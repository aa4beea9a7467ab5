import { describe, expect, it } from "vitest";
import {
  AlpineError,
  answersProbe,
  artifactMismatch,
  autoTeardownAfterExport,
  type Blocker,
  chainParent,
  chainProblem,
  checkpointError,
  checkpointIdFor,
  contentHash,
  DEFAULT_CONFIG,
  exportMessage,
  exportPrecheck,
  exportSource,
  gcVerdict,
  hasUnsavedWork,
  identityConflicts,
  keptForInspection,
  launchResumes,
  launchStep,
  observeStatus,
  type Probe,
  reconciliation,
  retentionVictims,
  type SandboxState,
  STATES,
  type StoredEvent,
  settlementOf,
  stateBeforeSaving,
  summarise,
  taskFailure,
  teardownBlockers,
  teardownPlan,
  unsavedWork,
  unverifiedCheckpoints,
  workspaceSource,
} from "../src/index.ts";
import { anOkProbe, aRecord, aStatus, aWorkspace, NOT_RUNNING } from "./fakes/records.ts";

const T = "t".repeat(40);
const OTHER = "o".repeat(40);
const verifiedAt = (tree: string) => ({
  id: "ckpt_1",
  verified: true,
  content_hash: "sha256:x",
  tree_hash: tree,
  head_commit: "h",
  bytes: 1,
  created_at: "2026-01-01T00:00:00.000Z",
});
const exportedAt = (tree: string | null) => ({
  branch: "alpine/box",
  commit: "c",
  tree_hash: tree,
  remote: null,
  pushed_at: null,
  pr_url: null,
  patch_file: null,
  exported_at: "2026-01-01T00:00:00.000Z",
});

describe("hasUnsavedWork", () => {
  const cases: [
    string,
    Parameters<typeof hasUnsavedWork>[0],
    Parameters<typeof hasUnsavedWork>[1],
    boolean,
  ][] = [
    ["no workspace", aRecord(), null, false],
    ["clean, nothing ahead", aRecord(), aWorkspace(), false],
    ["dirty, never saved", aRecord(), aWorkspace({ dirty: true }), true],
    ["commits ahead, never saved", aRecord(), aWorkspace({ ahead: 2 }), true],
    [
      "dirty, tree unknown",
      aRecord({ checkpoint: verifiedAt(T) }),
      aWorkspace({ dirty: true, tree_hash: null }),
      true,
    ],
    [
      "dirty, in the verified checkpoint",
      aRecord({ checkpoint: verifiedAt(T) }),
      aWorkspace({ dirty: true }),
      false,
    ],
    [
      "dirty, in an unverified checkpoint",
      aRecord({ checkpoint: { ...verifiedAt(T), verified: false } }),
      aWorkspace({ dirty: true }),
      true,
    ],
    [
      "dirty, checkpoint of another tree",
      aRecord({ checkpoint: verifiedAt(OTHER) }),
      aWorkspace({ dirty: true }),
      true,
    ],
    ["dirty, in the latest export", aRecord({ export: exportedAt(T) }), aWorkspace({ dirty: true }), false],
    [
      "dirty, export of another tree",
      aRecord({ export: exportedAt(OTHER) }),
      aWorkspace({ dirty: true }),
      true,
    ],
  ];
  it.each(cases)("%s", (_, record, workspace, expected) => {
    expect(hasUnsavedWork(record, workspace)).toBe(expected);
  });
});

describe("teardown blockers and plan", () => {
  const busy = aStatus({ agent: { state: "busy", last_activity: null, session_id: "s" } });
  const retrying = aStatus({ agent: { state: "retry", last_activity: null, session_id: "s" } });
  const taskRunning = aStatus({
    task: {
      session_id: "s",
      prompt_summary: "p",
      state: "running",
      started_at: "2026-01-01T00:00:00.000Z",
      finished_at: null,
      error: null,
    },
  });
  const dirty = aStatus({ workspace: aWorkspace({ dirty: true }) });
  const unreachable: Probe = { state: "unavailable", at: null, status: null, error: null };
  const cases: [string, SandboxState, Probe, { type: string } | null, Blocker[]][] = [
    ["running, idle, clean", "running", anOkProbe(), null, []],
    ["another operation holds it", "running", anOkProbe(), { type: "launch" }, ["operation_in_progress"]],
    ["agent busy", "running", anOkProbe(busy), null, ["agent_busy"]],
    ["agent retrying", "running", anOkProbe(retrying), null, ["agent_busy"]],
    ["task running", "running", anOkProbe(taskRunning), null, ["agent_busy"]],
    ["unsaved work", "completed", anOkProbe(dirty), null, ["unsaved_changes"]],
    ["live but unreachable", "running", unreachable, null, ["runtime_unreachable"]],
    ["saving but unreachable", "saving", unreachable, null, ["runtime_unreachable"]],
    ["destroyed", "destroyed", NOT_RUNNING, null, []],
    ["error without a kept workspace", "error", NOT_RUNNING, null, []],
    [
      "error with a kept workspace",
      "error",
      { ...NOT_RUNNING, kept_workspace: true },
      null,
      ["runtime_unreachable"],
    ],
  ];
  it.each(cases)("%s", (_, state, probe, lease, expected) => {
    expect(teardownBlockers(aRecord({ state }), probe, lease)).toEqual(expected);
  });

  const setupFailed = new AlpineError("setup_failed", "setup failed").toJSON();
  const otherError = new AlpineError("agent_start_failed", "no start").toJSON();
  const handle = { handle: { id: "rt" }, web_url: null };
  it.each([
    ["error after a failed setup, runtime kept", "error", setupFailed, handle, true],
    ["error after a failed setup, no runtime", "error", setupFailed, null, false],
    ["error for another reason", "error", otherError, handle, false],
    ["running (live, not kept)", "running", null, handle, false],
  ] as const)("kept for inspection: %s → %s", (_, state, error, runtime, expected) => {
    const record = aRecord({ state, error: error as never, runtime: runtime as never });
    expect(keptForInspection(record)).toBe(expected);
    expect(answersProbe(record)).toBe(expected || state === "running");
  });

  it("one kept for inspection that does not answer blocks a teardown without --force", () => {
    const record = aRecord({ state: "error", error: setupFailed as never, runtime: handle as never });
    expect(teardownBlockers(record, unreachable, null)).toEqual(["runtime_unreachable"]);
    expect(teardownBlockers(record, anOkProbe(dirty), null)).toEqual(["unsaved_changes"]);
  });

  it.each([
    [[], "destroy"],
    [["unsaved_changes"], "checkpoint_then_destroy"],
    [["runtime_unreachable"], "refuse_unreachable"],
    [["agent_busy", "unsaved_changes"], "refuse_agent_busy"],
    [["runtime_unreachable", "unsaved_changes"], "refuse_unreachable"],
  ] as [Blocker[], string][])("plan for %j is %s", (blockers, plan) => {
    expect(teardownPlan(blockers)).toBe(plan);
  });

  it("reports the unsaved files and commits", () => {
    const ws = aWorkspace({ changed_files: [{ path: "a.ts", status: "modified" }], ahead: 3 });
    expect(unsavedWork(ws)).toEqual({ unsaved_files: ["a.ts"], unsaved_commits: 3 });
    expect(unsavedWork(null)).toEqual({ unsaved_files: [], unsaved_commits: 0 });
  });
});

describe("settling an interrupted operation", () => {
  const savingFrom = (from: SandboxState): StoredEvent => ({
    sandbox_id: "sbx_1",
    name: "box",
    at: "2026-01-01T00:00:00.000Z",
    kind: "transition",
    from,
    to: "saving",
    operation_id: "op_1",
    reason: "checkpoint",
  });

  it.each(["new", "running", "completed", "destroyed", "error"] as SandboxState[])(
    "%s needs nothing",
    (state) => {
      expect(settlementOf(aRecord({ state }), []).kind).toBe("none");
    },
  );

  it("a dead launch leaves the sandbox in error, saying so", () => {
    const s = settlementOf(aRecord({ state: "provisioning" }), []);
    expect(s.kind).toBe("fail_launch");
    if (s.kind !== "fail_launch") return;
    expect(s.to).toBe("error");
    expect(s.error.reason).toBe("sandbox_unavailable");
    expect(s.error.details).toEqual({ interrupted: "launch" });
  });

  it.each([
    [[savingFrom("running")], "running", false],
    [[savingFrom("completed")], "completed", false],
    [[savingFrom("completed"), savingFrom("running")], "running", false],
    [[], "error", true],
  ] as [StoredEvent[], SandboxState, boolean][])(
    "a dead checkpoint goes back (%#)",
    (events, to, hasError) => {
      const s = settlementOf(aRecord({ state: "saving" }), events);
      expect(s).toMatchObject({ kind: "undo_saving", to });
      if (s.kind === "undo_saving") expect(s.error !== null).toBe(hasError);
    },
  );

  it("the state before saving is the latest transition into saving", () => {
    expect(stateBeforeSaving([savingFrom("completed"), savingFrom("running")])).toBe("running");
    expect(stateBeforeSaving([])).toBeNull();
  });

  it("a dead teardown is held and marked once", () => {
    const first = settlementOf(aRecord({ state: "tearing_down" }), []);
    expect(first.kind).toBe("hold_teardown");
    if (first.kind !== "hold_teardown" || !first.mark) throw new Error("expected a mark");
    expect(first.mark.error.details).toEqual({ interrupted: "teardown" });
    const marked = aRecord({ state: "tearing_down", error: first.mark.error.toJSON() });
    expect(settlementOf(marked, [])).toEqual({ kind: "hold_teardown", mark: null });
  });
});

describe("launch decisions", () => {
  const ready = anOkProbe();
  const booting = anOkProbe(aStatus({ phase: "booting" }));
  const down: Probe = { state: "unavailable", at: null, status: null, error: null };
  it.each([
    ["running", ready, "reuse"],
    ["completed", ready, "reuse"],
    ["running", booting, "recover"],
    ["running", down, "recover"],
    ["completed", null, "recover"],
    ["tearing_down", null, "relaunch_interrupted_teardown"],
    ["new", null, "provision"],
    ["destroyed", null, "provision"],
    ["error", null, "provision"],
  ] as [SandboxState, Probe | null, string][])("%s with %j → %s", (state, probe, step) => {
    expect(launchStep(state, probe)).toBe(step);
  });

  it("resumes what ran before", () => {
    expect(STATES.filter(launchResumes)).toEqual(["tearing_down", "destroyed", "error", "suspended"]);
  });

  it.each([
    [true, false, "restore"],
    [true, true, "init"],
    [false, false, "init"],
    [false, true, "init"],
  ])("checkpoint %s, kept workspace %s → %s", (checkpoint, kept, source) => {
    expect(workspaceSource(checkpoint, kept)).toBe(source);
  });

  it("names every identity conflict", () => {
    const record = aRecord();
    expect(identityConflicts(record, { repo: record.repo })).toEqual([]);
    expect(identityConflicts(record, {})).toEqual([]);
    expect(identityConflicts(record, { repo: "r2", image_profile: "big", provider: "docker" })).toEqual([
      `repo ${record.repo} ≠ r2`,
      "image profile default ≠ big",
      "provider local ≠ docker",
    ]);
  });
});

describe("export gating", () => {
  it.each([
    ["running", false, "workspace"],
    ["completed", false, "workspace"],
    ["destroyed", false, "checkpoint"],
    ["running", true, "checkpoint"],
    ["error", true, "checkpoint"],
    ["destroyed", true, "checkpoint"],
  ] as [SandboxState, boolean, string][])(
    "%s (from checkpoint: %s) exports from the %s",
    (state, from, source) => {
      expect(exportSource("box", state, from)).toBe(source);
    },
  );

  it.each([
    ["saving", false, "export_retryable_state"],
    ["tearing_down", true, "export_retryable_state"],
    ["error", false, "export_state_blocked"],
    ["new", false, "export_state_blocked"],
    ["provisioning", false, "export_state_blocked"],
  ] as [SandboxState, boolean, string][])(
    "%s (from checkpoint: %s) is refused with %s",
    (state, from, reason) => {
      expect(() => exportSource("box", state, from)).toThrow(expect.objectContaining({ reason }));
    },
  );

  it("refuses before the lease only while a live operation holds a changing sandbox", () => {
    expect(() => exportPrecheck("box", "saving", true)).toThrow(AlpineError);
    expect(() => exportPrecheck("box", "saving", false)).not.toThrow();
    expect(() => exportPrecheck("box", "running", true)).not.toThrow();
  });

  it.each([
    [true, "completed", true, 0, true],
    [false, "completed", true, 0, false],
    [true, "running", true, 0, false],
    [true, "completed", false, 0, false],
    [true, "completed", true, 60, false],
  ] as [boolean, SandboxState, boolean, number, boolean][])(
    "auto teardown after an export (pushed %s, %s, auto %s, retention %d) → %s",
    (pushed, state, auto, retention, expected) => {
      const config = structuredClone(DEFAULT_CONFIG);
      config.sandbox.auto_teardown = auto;
      config.sandbox.completed_retention_minutes = retention;
      expect(autoTeardownAfterExport(pushed, state, config)).toBe(expected);
    },
  );

  it("writes the commit message from the task and the files", () => {
    expect(exportMessage("  Fix the bug \n", "box", ["a.ts"])).toBe(
      "Fix the bug\n\nExported by alpine from sandbox box.\n\nFiles changed:\n- a.ts",
    );
    expect(exportMessage(null, "box", [])).toBe(
      "Work from alpine sandbox box\n\nExported by alpine from sandbox box.",
    );
    const many = Array.from({ length: 52 }, (_, i) => `f${i}`);
    expect(exportMessage("t", "box", many).split("\n").at(-1)).toBe("- … and 2 more");
  });

  it("summarises a prompt to its first line, at most 120 characters", () => {
    expect(summarise("first\nsecond")).toBe("first");
    expect(summarise("x".repeat(200))).toBe(`${"x".repeat(117)}...`);
  });
});

describe("reconciling a probe into the record", () => {
  const running = aRecord({
    state: "running",
    agent: "busy",
    task: {
      prompt_summary: "p",
      session_id: "s1",
      started_at: "2026-01-01T00:00:00.000Z",
      finished_at: null,
    },
  });
  const done = (session: string, agent: "idle" | "busy" = "idle") =>
    aStatus({
      agent: { state: agent, last_activity: "2026-01-01T00:05:00.000Z", session_id: session },
      task: {
        session_id: session,
        prompt_summary: "p",
        state: "completed",
        started_at: "2026-01-01T00:00:00.000Z",
        finished_at: "2026-01-01T00:05:00.000Z",
        error: null,
      },
    });

  it.each([
    ["the record's task completed, agent idle", running, done("s1"), true, true],
    ["completed but the agent is still busy", running, done("s1", "busy"), false, true],
    ["another session completed", running, done("s2"), false, true],
    ["a completed sandbox", { ...running, state: "completed" as const }, done("s1"), false, true],
    [
      "nothing changed",
      { ...running, agent: "idle" as const, last_activity: "2026-01-01T00:05:00.000Z" },
      done("s2"),
      false,
      false,
    ],
  ])("%s", (_, record, status, finished, agentChanged) => {
    expect(observeStatus(record, status)).toMatchObject({ finished, agentChanged });
  });

  it("moves a finished task to completed with its finish time", () => {
    const change = reconciliation(running, done("s1"), true, "2026-01-01T09:00:00.000Z");
    expect(change.to).toBe("completed");
    expect(change.patch.task?.finished_at).toBe("2026-01-01T00:05:00.000Z");
    expect(change.patch.agent).toBe("idle");
  });

  it("only updates the agent when the record moved on meanwhile", () => {
    const change = reconciliation({ ...running, state: "completed" }, done("s1"), true, "x");
    expect(change.to).toBeNull();
    expect(change.patch).toMatchObject({
      agent: "idle",
      agent_reason: null,
      last_activity: "2026-01-01T00:05:00.000Z",
    });
    // What sandboxd observed of the task is kept: how it ended.
    expect(change.patch.task?.state).toBe("completed");
  });

  it("keeps the last activity the record knows when sandboxd has none", () => {
    const status = aStatus({ agent: { state: "idle", last_activity: null, session_id: null } });
    const change = reconciliation(
      { ...running, last_activity: "2026-01-01T00:01:00.000Z" },
      status,
      false,
      "x",
    );
    expect(change.patch.last_activity).toBe("2026-01-01T00:01:00.000Z");
  });

  it("reports a failed task of the record's session only", () => {
    const failed = aStatus({
      task: {
        session_id: "s1",
        prompt_summary: "p",
        state: "failed",
        started_at: "2026-01-01T00:00:00.000Z",
        finished_at: null,
        error: null,
      },
    });
    expect(taskFailure(running, failed)?.reason).toBe("task_failed");
    expect(taskFailure({ ...running, task: { ...running.task!, session_id: "s9" } }, failed)).toBeNull();
    expect(taskFailure(running, done("s1"))).toBeNull();
    expect(taskFailure(running, null)).toBeNull();
  });

  it("tells a budget stop and an interruption from a failure, with the agent's reason", () => {
    const ended = (
      state: "interrupted" | "failed",
      reason_code: "budget_reached" | "task_failed",
      reason: string,
    ) =>
      aStatus({
        agent: { state: "budget", last_activity: null, session_id: "s1", reason },
        task: {
          session_id: "s1",
          prompt_summary: "p",
          state,
          started_at: "2026-01-01T00:00:00.000Z",
          finished_at: "2026-01-01T00:01:00.000Z",
          error: { error: reason, exit_code: 1, reason_code, retryable: false, details: {} },
        },
      });
    const budget = taskFailure(
      running,
      ended("interrupted", "budget_reached", "task budget reached: 5 of 4 tokens"),
    );
    expect(budget?.reason).toBe("budget_reached");
    expect(budget?.message).toContain("task budget reached: 5 of 4 tokens");
    const aborted = taskFailure(running, ended("interrupted", "task_failed", "the turn was aborted: x"));
    expect(aborted?.reason).toBe("task_failed");
    expect(aborted?.message).toContain("was interrupted");
    const failed = taskFailure(running, ended("failed", "task_failed", "model error (HTTP 400): bad"));
    expect(failed?.message).toContain("failed in sandbox");
    expect(failed?.message).toContain("model error (HTTP 400): bad");
  });

  it("records how the task ended and what it spent, and the agent's reason", () => {
    const usage = { input: 3, output: 1, reasoning: 0, cache_read: 0, cache_write: 0, cost: 0 };
    const status = aStatus({
      agent: { state: "error", last_activity: null, session_id: "s1", reason: "model error: x", usage },
      task: {
        session_id: "s1",
        prompt_summary: "p",
        state: "failed",
        started_at: "2026-01-01T00:00:00.000Z",
        finished_at: "2026-01-01T00:01:00.000Z",
        error: null,
        usage,
      },
    });
    expect(observeStatus({ ...running, agent: "error" }, status).agentChanged).toBe(true);
    const change = reconciliation(running, status, false, "x");
    expect(change.to).toBeNull();
    expect(change.patch).toMatchObject({
      agent: "error",
      agent_reason: "model error: x",
      usage,
      task: { state: "failed", usage, finished_at: "2026-01-01T00:01:00.000Z" },
    });
    // Once recorded, nothing changed: no write.
    const recorded = { ...running, ...change.patch } as typeof running;
    expect(observeStatus(recorded, status).agentChanged).toBe(false);
  });
});

describe("checkpoint decisions", () => {
  it("derives the checkpoint id from the operation id", () => {
    expect(checkpointIdFor("op_abc")).toBe("ckpt_abc");
    expect(checkpointIdFor("xyz")).toBe("ckpt_xyz");
  });

  const verified = { id: "c2", created_at: "2026-01-02T00:00:00.000Z" };
  const m = (created_at: string) => ({ created_at });
  it.each([
    [
      "keeps the verified one and older ones",
      [{ id: "c1", manifest: m("2026-01-01T00:00:00.000Z") }],
      verified,
      [],
    ],
    ["drops a newer one", [{ id: "c3", manifest: m("2026-01-03T00:00:00.000Z") }], verified, ["c3"]],
    ["drops one without a manifest", [{ id: "c0", manifest: null }], verified, ["c0"]],
    ["never drops the verified one", [{ id: "c2", manifest: null }], verified, []],
    [
      "drops everything when none is verified",
      [{ id: "c1", manifest: m("2026-01-01T00:00:00.000Z") }],
      null,
      ["c1"],
    ],
  ] as const)("%s", (_, stored, v, expected) => {
    expect(unverifiedCheckpoints(stored, v)).toEqual(expected);
  });

  it.each([
    [["a", "b", "c"], 5, "c", []],
    [["a", "b", "c"], 2, "c", ["a"]],
    [["a", "b", "c"], 1, "c", ["a", "b"]],
    [["a", "b", "c"], 1, "a", ["b"]],
  ] as [string[], number, string, string[]][])(
    "retention of %j keeping %d (not %s) deletes %j",
    (ids, keep, keepId, gone) => {
      expect(retentionVictims(ids, keep, keepId)).toEqual(gone);
    },
  );

  it.each([
    [
      "a chain is kept whole while its newest is kept",
      ["a", "b", "c"],
      1,
      "c",
      { b: ["a"], c: ["a", "b"] },
      [],
    ],
    [
      "a link nothing kept builds on goes",
      ["a", "b", "c", "d"],
      1,
      "d",
      { b: ["a"], c: ["a", "b"] },
      ["a", "b", "c"],
    ],
    [
      "two chains: the old one goes once the new one is all that is kept",
      ["a", "b", "c", "d"],
      2,
      "d",
      { b: ["a"], d: ["c"] },
      ["a", "b"],
    ],
    [
      "the recorded checkpoint's chain stays even beyond keep",
      ["a", "b", "c", "d"],
      1,
      "b",
      { b: ["a"] },
      ["c"],
    ],
    ["self-contained checkpoints: only the newest", ["a", "b", "c"], 2, "c", {}, ["a"]],
  ] as [string, string[], number, string, Record<string, string[]>, string[]][])(
    "retention with chains: %s",
    (_, ids, keep, keepId, deps, gone) => {
      expect(retentionVictims(ids, keep, keepId, new Map(Object.entries(deps)))).toEqual(gone);
    },
  );

  const manifest = (id: string, chain: { checkpoint_id: string; sha256: string }[] = []) => ({
    schema_version: 1 as const,
    checkpoint_id: id,
    sandbox_id: "sbx",
    created_at: "2026-01-01T00:00:00.000Z",
    branch: "alpine/box",
    base_commit: "a".repeat(40),
    head_commit: "b".repeat(40),
    checkpoint_commit: "c".repeat(40),
    tree_hash: "d".repeat(40),
    artifacts: [{ name: "workspace.bundle", sha256: `${id.length}`.padStart(64, "e"), bytes: 1 }],
    ...(chain.length ? { depends_on: { checkpoints: chain, upstream: [], prerequisites: [] } } : {}),
  });

  it.each([
    ["no verified checkpoint: none", null, true, 8, null],
    ["a chain that does not verify: none", manifest("c1"), false, 8, null],
    ["a self-contained one: it", manifest("c1"), true, 8, "c1"],
    [
      "a chain one short of the limit: it",
      manifest("c3", [
        { checkpoint_id: "c1", sha256: "1".repeat(64) },
        { checkpoint_id: "c2", sha256: "2".repeat(64) },
      ]),
      true,
      4,
      "c3",
    ],
    [
      "a full chain: none (the next starts a new one)",
      manifest("c3", [
        { checkpoint_id: "c1", sha256: "1".repeat(64) },
        { checkpoint_id: "c2", sha256: "2".repeat(64) },
      ]),
      true,
      3,
      null,
    ],
  ] as const)("chain parent: %s", (_, latest, verified, max, expected) => {
    expect(chainParent(latest, verified, max)?.checkpoint_id ?? null).toBe(expected);
  });

  it("a chain's links must be in the store as the dependent recorded them", () => {
    const link = manifest("c1");
    const sha = link.artifacts[0]!.sha256;
    const dependent = manifest("c2", [{ checkpoint_id: "c1", sha256: sha }]);
    expect(chainProblem(dependent, [{ checkpoint_id: "c1", manifest: link }])).toBeNull();
    expect(chainProblem(manifest("c0"), [])).toBeNull();
    expect(chainProblem(dependent, [{ checkpoint_id: "c1", manifest: null }])).toMatchObject({
      reason: "checkpoint_missing",
      details: { checkpoint_id: "c1" },
    });
    const other = manifest("c2", [{ checkpoint_id: "c1", sha256: "f".repeat(64) }]);
    expect(chainProblem(other, [{ checkpoint_id: "c1", manifest: link }])).toMatchObject({
      reason: "checkpoint_checksum_mismatch",
      details: { checkpoint_id: "c1", artifact: "workspace.bundle" },
    });
  });

  it("flags an artifact that changed in transit", () => {
    const expected = { name: "workspace.bundle", sha256: "a", bytes: 3 };
    expect(artifactMismatch(expected, { sha256: "a", bytes: 3 })).toBeNull();
    expect(artifactMismatch(expected, { sha256: "b", bytes: 3 })?.details).toEqual({
      artifact: "workspace.bundle",
      expected: "a",
      got: "b",
    });
    expect(artifactMismatch(expected, { sha256: "a", bytes: 4 })?.reason).toBe(
      "checkpoint_checksum_mismatch",
    );
  });

  it.each([
    ["internal_error", "checkpoint_failed"],
    ["sandbox_unavailable", "checkpoint_failed"],
    ["checkpoint_checksum_mismatch", "checkpoint_checksum_mismatch"],
  ] as const)("a %s is reported as %s", (reason, reported) => {
    expect(checkpointError(new AlpineError(reason, "x"), "box").reason).toBe(reported);
  });

  it("hashes content, not metadata", async () => {
    const base = { tree_hash: T, head_commit: "h", branch: "b" };
    const a = await contentHash({ ...base, checkpoint_id: "c1" } as never);
    const b = await contentHash({ ...base, checkpoint_id: "c2" } as never);
    const c = await contentHash({ ...base, tree_hash: OTHER } as never);
    expect(a).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });
});

describe("gc selection", () => {
  const now = Date.parse("2026-01-01T02:00:00.000Z");
  const finishedAt = (at: string) =>
    aRecord({
      state: "completed",
      task: { prompt_summary: "p", session_id: "s", started_at: at, finished_at: at },
    });
  const config = (auto: boolean, minutes: number) => {
    const c = structuredClone(DEFAULT_CONFIG);
    c.sandbox.auto_teardown = auto;
    c.sandbox.completed_retention_minutes = minutes;
    return c;
  };
  it.each([
    ["a running sandbox", aRecord({ state: "running" }), config(true, 0), { kind: "skip" }],
    [
      "auto teardown off",
      finishedAt("2026-01-01T00:00:00.000Z"),
      config(false, 0),
      { kind: "keep", reason: "auto_teardown is off" },
    ],
    [
      "within retention",
      finishedAt("2026-01-01T01:30:00.000Z"),
      config(true, 60),
      { kind: "keep", reason: "retained until 2026-01-01T02:30:00.000Z" },
    ],
    ["past retention", finishedAt("2026-01-01T00:30:00.000Z"), config(true, 60), { kind: "due" }],
    ["exactly due", finishedAt("2026-01-01T01:00:00.000Z"), config(true, 60), { kind: "due" }],
    [
      "no task: from its last update",
      aRecord({ state: "completed", updated_at: "2026-01-01T01:59:00.000Z" }),
      config(true, 0),
      { kind: "due" },
    ],
  ])("%s", (_, record, c, verdict) => {
    expect(gcVerdict(record, now, c)).toEqual(verdict);
  });
});
