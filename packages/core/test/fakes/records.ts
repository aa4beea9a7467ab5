import {
  newSandboxRecord,
  type Probe,
  type SandboxdStatusView,
  type SandboxRecord,
} from "../../src/index.ts";

/** A sandbox record for decision tests: `new` unless patched. */
export function aRecord(patch: Partial<SandboxRecord> = {}): SandboxRecord {
  return {
    ...newSandboxRecord(
      {
        id: "sbx_1",
        name: "box",
        provider: "local",
        repo: "https://github.test/acme/app.git",
        ref: null,
        branch: "alpine/box",
        image_profile: "default",
      },
      "2026-01-01T00:00:00.000Z",
    ),
    ...patch,
  };
}

type Workspace = NonNullable<SandboxdStatusView["workspace"]>;

export function aWorkspace(patch: Partial<Workspace> = {}): Workspace {
  return {
    repo: "https://github.test/acme/app.git",
    branch: "alpine/box",
    base_commit: "b".repeat(40),
    head: "b".repeat(40),
    dirty: false,
    changed_files: [],
    ahead: 0,
    tree_hash: "t".repeat(40),
    ...patch,
  };
}

export function aStatus(patch: Partial<SandboxdStatusView> = {}): SandboxdStatusView {
  return {
    sandbox_id: "sbx_1",
    name: "box",
    phase: "ready",
    error: null,
    workspace: aWorkspace(),
    agent: { state: "idle", last_activity: null, session_id: null },
    task: null,
    opencode: { version: "1", pid: 1, restarts: 0, ready: true, started_at: null },
    ...patch,
  };
}

export function anOkProbe(status: SandboxdStatusView = aStatus()): Probe {
  return { state: "ok", at: "2026-01-01T00:00:00.000Z", status, error: null };
}

export const NOT_RUNNING: Probe = {
  state: "not_running",
  at: null,
  status: null,
  error: null,
  kept_workspace: false,
};
