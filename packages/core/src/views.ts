import type { AlpineConfig } from "./config.ts";
import { confinementView } from "./confinement.ts";
import type { ErrorJson } from "./errors.ts";
import type { ExportResult, LaunchResult, Orchestrator, Probe } from "./orchestrator.ts";
import type { CheckpointManifest } from "./ports.ts";
import { providerDescriptor } from "./provider-kinds.ts";
import type { Lease, SandboxRecord, StoredEvent } from "./schemas.ts";

/**
 * The `--json` outputs (docs/json-contract.md), built from orchestrator results. Both the
 * CLI (local providers) and the Cloudflare control plane (in its Durable
 * Object) build them here, so a command prints the same JSON whichever side
 * ran the orchestrator.
 */

export interface LaunchView {
  name: string;
  id: string;
  state: SandboxRecord["state"];
  provider: SandboxRecord["provider"];
  repo: string;
  ref: string | null;
  branch: string;
  image_profile: string;
  web_url: string | null;
  reused: boolean;
  resumed: boolean;
  task_accepted: boolean;
  session_id: string | null;
  operation_id: string;
}

export function launchView(result: LaunchResult, webUrl?: string | null): LaunchView {
  const r = result.record;
  return {
    name: r.name,
    id: r.id,
    state: r.state,
    provider: r.provider,
    repo: r.repo,
    ref: r.ref,
    branch: r.branch,
    image_profile: r.image_profile,
    web_url: webUrl !== undefined ? webUrl : (r.runtime?.web_url ?? null),
    reused: result.reused,
    resumed: result.resumed,
    task_accepted: result.task_accepted,
    session_id: result.session_id,
    operation_id: result.operation_id,
  };
}

export interface ListItemView {
  name: string;
  id: string;
  provider: SandboxRecord["provider"];
  repo: string;
  image_profile: string;
  state: SandboxRecord["state"];
  agent: SandboxRecord["agent"];
  last_activity: string | null;
  created_at: string;
}

export function listItemView(r: SandboxRecord): ListItemView {
  return {
    name: r.name,
    id: r.id,
    provider: r.provider,
    repo: r.repo,
    image_profile: r.image_profile,
    state: r.state,
    agent: r.agent,
    last_activity: r.last_activity,
    created_at: r.created_at,
  };
}

/** `alpine status --json`. */
export function statusView(
  orchestrator: Pick<Orchestrator, "blockers">,
  record: SandboxRecord,
  probe: Probe,
  lease: Lease | null,
  config: AlpineConfig,
  webUrl?: string | null,
) {
  const s = probe.status;
  return {
    name: record.name,
    id: record.id,
    state: record.state,
    provider: record.provider,
    identity: { repo: record.repo, ref: record.ref, image_profile: record.image_profile },
    runtime: {
      web_url: webUrl !== undefined ? webUrl : (record.runtime?.web_url ?? null),
      probe_state: probe.state,
      probe_at: probe.at,
      phase: s?.phase ?? null,
      agent: s?.agent.state ?? (probe.state === "ok" ? "unknown" : record.agent),
      opencode_version: s?.opencode.version ?? null,
      opencode_restarts: s?.opencode.restarts ?? null,
      egress: s?.egress ?? null,
      ports: s?.ports ?? [],
    },
    workspace: s?.workspace
      ? {
          branch: s.workspace.branch,
          head: s.workspace.head,
          dirty: s.workspace.dirty,
          changed_files: s.workspace.changed_files,
          ahead: s.workspace.ahead,
        }
      : null,
    durability: record.checkpoint
      ? {
          checkpoint_id: record.checkpoint.id,
          verified: record.checkpoint.verified,
          content_hash: record.checkpoint.content_hash,
          created_at: record.checkpoint.created_at,
        }
      : null,
    export: record.export
      ? {
          branch: record.export.branch,
          commit: record.export.commit,
          pushed_at: record.export.pushed_at,
          pr_url: record.export.pr_url,
        }
      : null,
    task: record.task
      ? {
          ...record.task,
          state: (s?.task?.session_id === record.task.session_id ? s?.task?.state : undefined) ?? "unknown",
        }
      : null,
    operation: lease
      ? {
          id: lease.operation_id,
          type: lease.type,
          holder: lease.holder,
          acquired_at: lease.acquired_at,
          expires_at: lease.expires_at,
        }
      : null,
    teardown: {
      auto_teardown: config.sandbox.auto_teardown,
      blockers: orchestrator.blockers(record, probe, lease),
    },
    confinement: confinementView(providerDescriptor(record.provider).isolation, s?.confinement),
    last_activity: s?.agent.last_activity ?? record.last_activity,
    error: (probe.state === "unavailable" && probe.error
      ? probe.error.toJSON()
      : record.error) as ErrorJson | null,
  };
}
export type StatusView = ReturnType<typeof statusView>;

export interface ExportView {
  name: string;
  state: SandboxRecord["state"];
  branch: string | null;
  commit: string | null;
  source: "workspace" | "checkpoint";
  pushed: boolean;
  remote: string | null;
  pr_url: string | null;
  files_changed: number;
  insertions: number;
  deletions: number;
  checkpoint_id: string | null;
  auto_tore_down: boolean;
  exported_at: string;
}

export function exportView(name: string, result: ExportResult): ExportView {
  const w = result.work;
  return {
    name,
    state: result.record.state,
    branch: w.pushed ? w.branch : null,
    commit: w.commit,
    source: result.source,
    pushed: w.pushed,
    remote: w.remote,
    pr_url: result.pr_url,
    files_changed: w.files_changed,
    insertions: w.insertions,
    deletions: w.deletions,
    checkpoint_id: result.checkpoint_id,
    auto_tore_down: result.auto_tore_down,
    exported_at: result.exported_at,
  };
}

export interface CheckpointView {
  name: string;
  checkpoint_id: string;
  verified: boolean;
  content_hash: string;
  bytes: number;
  created_at: string;
}

export function checkpointView(
  name: string,
  result: { record: SandboxRecord; manifest: CheckpointManifest },
): CheckpointView {
  const cp = result.record.checkpoint!;
  return {
    name,
    checkpoint_id: cp.id,
    verified: cp.verified,
    content_hash: cp.content_hash,
    bytes: cp.bytes,
    created_at: cp.created_at,
  };
}

export interface TeardownView {
  name: string;
  state: SandboxRecord["state"];
  checkpoint_id: string | null;
  destroyed: boolean;
  forced: boolean;
}

export function teardownView(
  name: string,
  result: { record: SandboxRecord; destroyed: boolean; checkpoint_id: string | null },
  forced: boolean,
): TeardownView {
  return {
    name,
    state: result.record.state,
    checkpoint_id: result.checkpoint_id,
    destroyed: result.destroyed,
    forced,
  };
}

/** `alpine task --json`. */
export interface TaskView {
  name: string;
  session_id: string;
  /** The sandbox's state after sending (or, with --wait, after the agent finished). */
  state: SandboxRecord["state"];
}

/** `alpine diff --json`: `patch` is empty with --stat. */
export interface DiffView {
  name: string;
  files: { path: string; status: string; insertions: number; deletions: number }[];
  patch: string;
}

/** A one-time login link to the sandbox's web UI. */
export interface LoginView {
  name: string;
  web_url: string;
  expires_at: string;
  /** Set for a preview link (`open --port`). */
  port?: number;
}

/** `alpine logs --json`: lifecycle events and the runtime's own log lines. */
export interface LogsView {
  name: string;
  events: StoredEvent[];
  lines: string[];
}

/** `alpine gc --json`. */
export interface GcView {
  torn_down: string[];
  kept: { name: string; reason: string }[];
}
