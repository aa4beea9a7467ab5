import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG } from "../src/config.ts";
import { AlpineError } from "../src/errors.ts";
import type { Probe } from "../src/orchestrator.ts";
import type { SandboxdStatus } from "../src/sandboxd-api.ts";
import { type Lease, type SandboxRecord, StatusOutputSchema } from "../src/schemas.ts";
import { exportView, launchView, statusView } from "../src/views.ts";

const AT = "2026-01-01T00:00:00.000Z";
const LATER = "2026-01-01T00:05:00.000Z";
const SHA = "a".repeat(40);

function record(patch: Partial<SandboxRecord> = {}): SandboxRecord {
  return {
    id: "sbx_1",
    name: "demo",
    provider: "local",
    repo: "https://example.test/r.git",
    ref: "main",
    branch: "alpine/demo",
    image_profile: "default",
    state: "running",
    created_at: AT,
    updated_at: AT,
    last_activity: AT,
    agent: "idle",
    runtime: null,
    task: null,
    checkpoint: null,
    export: null,
    error: null,
    version: 1,
    ...patch,
  };
}

const sandboxd: SandboxdStatus = {
  sandbox_id: "sbx_1",
  name: "demo",
  phase: "ready",
  error: null,
  workspace: {
    repo: "https://example.test/r.git",
    branch: "alpine/demo",
    base_commit: SHA,
    head: SHA,
    dirty: true,
    changed_files: [{ path: "a.txt", status: "modified" }],
    ahead: 2,
    tree_hash: null,
  },
  agent: { state: "busy", last_activity: LATER, session_id: "ses_1" },
  task: {
    session_id: "ses_1",
    prompt_summary: "do it",
    state: "running",
    started_at: AT,
    finished_at: null,
    error: null,
  },
  opencode: { version: "1.2.3", pid: 9, restarts: 1, ready: true, started_at: AT },
  ports: [{ port: 3000, declared: false, listening: true }],
};

const lease: Lease = {
  id: "l1",
  type: "export",
  holder: "host:1",
  host: "host",
  pid: 1,
  operation_id: "op_1",
  acquired_at: AT,
  expires_at: LATER,
};

const noBlockers = { blockers: () => [] };

describe("statusView", () => {
  it("reports what a live sandboxd says, over the record", () => {
    const probe: Probe = { state: "ok", at: LATER, status: sandboxd as never, error: null };
    const rec = record({
      runtime: { handle: {}, web_url: "http://127.0.0.1:7000/" },
      task: { prompt_summary: "do it", session_id: "ses_1", started_at: AT, finished_at: null },
      checkpoint: {
        id: "cp_1",
        verified: true,
        content_hash: "h",
        tree_hash: SHA,
        head_commit: SHA,
        bytes: 10,
        created_at: AT,
      },
      export: {
        branch: "alpine/demo",
        commit: SHA,
        tree_hash: SHA,
        remote: "https://example.test/r.git",
        pushed_at: AT,
        pr_url: "https://example.test/pr/1",
        patch_file: null,
        exported_at: AT,
      },
    });
    const view = statusView(
      { blockers: () => [{ code: "unsaved_work" }] as never },
      rec,
      probe,
      lease,
      DEFAULT_CONFIG,
    );
    expect(view.runtime).toEqual({
      web_url: "http://127.0.0.1:7000/",
      probe_state: "ok",
      probe_at: LATER,
      phase: "ready",
      agent: "busy",
      agent_reason: null,
      usage: null,
      opencode_version: "1.2.3",
      opencode_restarts: 1,
      egress: null,
      environment: null,
      ports: [{ port: 3000, declared: false, listening: true }],
    });
    expect(view.workspace).toEqual({
      branch: "alpine/demo",
      head: SHA,
      dirty: true,
      changed_files: [{ path: "a.txt", status: "modified" }],
      ahead: 2,
    });
    expect(view.durability).toEqual({
      checkpoint_id: "cp_1",
      verified: true,
      content_hash: "h",
      created_at: AT,
    });
    expect(view.export).toEqual({
      branch: "alpine/demo",
      commit: SHA,
      pushed_at: AT,
      pr_url: "https://example.test/pr/1",
    });
    expect(view.task?.state).toBe("running");
    expect(view.operation).toEqual({
      id: "op_1",
      type: "export",
      holder: "host:1",
      acquired_at: AT,
      expires_at: LATER,
    });
    expect(view.teardown).toEqual({ auto_teardown: true, blockers: [{ code: "unsaved_work" }] });
    expect(view.last_activity).toBe(LATER);
    expect(view.error).toBeNull();
  });

  it("falls back to the record when sandboxd is not reachable, and reports the probe's error", () => {
    const error = new AlpineError("sandbox_unavailable", "down");
    const rec = record({
      agent: "idle",
      task: { prompt_summary: "x", session_id: "ses_old", started_at: AT, finished_at: AT },
    });
    const view = statusView(noBlockers, rec, { state: "unavailable", at: LATER, status: null, error }, null, {
      ...DEFAULT_CONFIG,
      sandbox: { ...DEFAULT_CONFIG.sandbox, auto_teardown: false },
    });
    expect(view.runtime).toMatchObject({
      phase: null,
      agent: "idle",
      opencode_version: null,
      opencode_restarts: null,
    });
    expect(view.runtime.web_url).toBeNull();
    expect(view.workspace).toBeNull();
    expect(view.durability).toBeNull();
    expect(view.export).toBeNull();
    // A record from before task states: finished_at set means the task completed.
    expect(view.task?.state).toBe("completed");
    expect(view.operation).toBeNull();
    expect(view.teardown.auto_teardown).toBe(false);
    expect(view.last_activity).toBe(AT);
    expect(view.error).toEqual(error.toJSON());
    expect(StatusOutputSchema.safeParse(view).success).toBe(true);
  });

  it("reports the record's error when the probe has none, and 'unknown' for an ok probe without status", () => {
    const recError = new AlpineError("agent_start_failed", "crashed").toJSON();
    const rec = record({ state: "error", error: recError });
    const stopped = statusView(
      noBlockers,
      rec,
      { state: "not_running", at: null, status: null, error: null },
      null,
      DEFAULT_CONFIG,
      "https://cp.test/s/demo/",
    );
    expect(stopped.error).toEqual(recError);
    expect(stopped.runtime.web_url).toBe("https://cp.test/s/demo/");
    expect(stopped.runtime.agent).toBe("idle");
    const unavailableNoError = statusView(
      noBlockers,
      rec,
      { state: "unavailable", at: null, status: null, error: null },
      null,
      DEFAULT_CONFIG,
    );
    expect(unavailableNoError.error).toEqual(recError);
    const ok = statusView(
      noBlockers,
      record(),
      { state: "ok", at: AT, status: null, error: null },
      null,
      DEFAULT_CONFIG,
      null,
    );
    expect(ok.runtime.agent).toBe("unknown");
    expect(ok.runtime.web_url).toBeNull();
  });

  it("says 'unknown' for a task sandboxd reports under another session", () => {
    const rec = record({
      task: { prompt_summary: "x", session_id: "ses_2", started_at: AT, finished_at: null },
    });
    const view = statusView(
      noBlockers,
      rec,
      { state: "ok", at: AT, status: sandboxd as never, error: null },
      null,
      DEFAULT_CONFIG,
    );
    expect(view.task?.state).toBe("unknown");
    const noTask = statusView(
      noBlockers,
      rec,
      { state: "ok", at: AT, status: { ...sandboxd, task: null, workspace: null } as never, error: null },
      null,
      DEFAULT_CONFIG,
    );
    expect(noTask.task?.state).toBe("unknown");
    expect(noTask.workspace).toBeNull();
  });
});

describe("statusView: agent reasons, task states and usage", () => {
  const spent = { input: 300, output: 100, reasoning: 0, cache_read: 0, cache_write: 0, cost: 0.01 };
  const ok = (status: SandboxdStatus): Probe => ({ state: "ok", at: LATER, status, error: null });
  const task = { prompt_summary: "x", session_id: "ses_1", started_at: AT, finished_at: null };

  it("carries sandboxd's reason, the task's end and what was spent", () => {
    const view = statusView(
      noBlockers,
      record({ task }),
      ok({
        ...sandboxd,
        agent: {
          ...sandboxd.agent,
          state: "budget",
          reason: "task budget reached: 1200 of 1000 tokens",
          usage: spent,
        },
        task: { ...sandboxd.task!, state: "interrupted", usage: spent },
      }),
      null,
      DEFAULT_CONFIG,
    );
    expect(view.runtime.agent).toBe("budget");
    expect(view.runtime.agent_reason).toBe("task budget reached: 1200 of 1000 tokens");
    expect(view.runtime.usage).toEqual(spent);
    expect(view.task).toMatchObject({ state: "interrupted", usage: spent });
    StatusOutputSchema.parse(view);
  });

  it("falls back to what the record last observed when sandboxd does not answer", () => {
    const view = statusView(
      noBlockers,
      record({
        agent: "error",
        agent_reason: "model auth failed (openai): no key",
        usage: spent,
        task: { ...task, state: "failed", usage: spent },
      }),
      {
        state: "unavailable",
        at: LATER,
        status: null,
        error: new AlpineError("sandbox_unavailable", "down"),
      },
      null,
      DEFAULT_CONFIG,
    );
    expect(view.runtime.agent).toBe("error");
    expect(view.runtime.agent_reason).toBe("model auth failed (openai): no key");
    expect(view.task).toMatchObject({ state: "failed", usage: spent });
    expect(view.runtime.usage).toEqual(spent);
  });

  it("calls a task that was running in a sandbox that no longer runs interrupted", () => {
    const view = statusView(
      noBlockers,
      record({ state: "error", task: { ...task, state: "running" } }),
      { state: "not_running", at: LATER, status: null, error: null },
      null,
      DEFAULT_CONFIG,
    );
    expect(view.task?.state).toBe("interrupted");
    expect(view.task?.usage).toBeNull();
  });
});

describe("launchView and exportView", () => {
  const launched = {
    record: record(),
    reused: false,
    resumed: true,
    task_accepted: false,
    session_id: null,
    operation_id: "op",
  };

  it("takes the web UI from the argument, else from the runtime, else null", () => {
    expect(launchView(launched).web_url).toBeNull();
    expect(
      launchView({ ...launched, record: record({ runtime: { handle: {}, web_url: "http://x/" } }) }).web_url,
    ).toBe("http://x/");
    expect(launchView(launched, "https://cp/")).toMatchObject({
      web_url: "https://cp/",
      resumed: true,
      ref: "main",
    });
  });

  it("names the branch only when it was pushed", () => {
    const work = {
      branch: "alpine/demo",
      commit: SHA,
      base_commit: SHA,
      tree_hash: SHA,
      files_changed: 0,
      insertions: 0,
      deletions: 0,
      pushed: false,
      remote: null,
    };
    const result = {
      record: record(),
      work,
      source: "checkpoint" as const,
      pr_url: null,
      checkpoint_id: "cp_1",
      auto_tore_down: true,
      exported_at: AT,
    };
    expect(exportView("demo", result as never)).toMatchObject({
      branch: null,
      pushed: false,
      source: "checkpoint",
    });
    expect(exportView("demo", { ...result, work: { ...work, pushed: true } } as never).branch).toBe(
      "alpine/demo",
    );
  });
});
