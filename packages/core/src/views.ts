import type { AlpineConfig } from "./config.ts";
import { confinementView } from "./confinement.ts";
import type { ErrorJson } from "./errors.ts";
import { type Overlap, overlapsAmong, type WorkOnRepo, workOf } from "./orchestrator/decisions/overlaps.ts";
import type { ExportResult, LaunchResult, Orchestrator, Probe } from "./orchestrator.ts";
import type { CheckpointManifest } from "./ports.ts";
import { providerDescriptor } from "./provider-kinds.ts";
import type { SandboxdStatus } from "./sandboxd-api.ts";
import type { Lease, SandboxRecord, StoredEvent, Usage } from "./schemas.ts";

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
  /** The branch its work is exported to (absent in items an older control plane stored). */
  branch?: string;
  image_profile: string;
  state: SandboxRecord["state"];
  agent: SandboxRecord["agent"];
  agent_reason: string | null;
  usage: Usage | null;
  last_activity: string | null;
  created_at: string;
  /** The files changed against the base commit when a probe last saw the workspace. */
  changed_files: string[];
  changes_seen_at: string | null;
  /** Its changes are not all in its latest pushed export (absent in items an older control plane stored). */
  unexported?: boolean;
  /** Filled in over the whole list by `withOverlaps`. */
  overlaps: Overlap[];
  /** Bytes of disk a `suspended` sandbox holds (its only cost); null otherwise or unknown. */
  disk_bytes: number | null;
  /** The control-plane principal that launched it; absent for local sandboxes. */
  owner?: string | null;
}

export function listItemView(r: SandboxRecord): ListItemView {
  return {
    name: r.name,
    id: r.id,
    provider: r.provider,
    repo: r.repo,
    branch: r.branch,
    image_profile: r.image_profile,
    state: r.state,
    agent: r.agent,
    agent_reason: r.agent_reason ?? null,
    usage: r.usage ?? null,
    last_activity: r.last_activity,
    created_at: r.created_at,
    changed_files: r.changes?.files ?? [],
    changes_seen_at: r.changes?.seen_at ?? null,
    unexported: workOf(r).unexported,
    overlaps: [],
    disk_bytes: r.state === "suspended" ? (r.suspension?.disk_bytes ?? null) : null,
    // Only sandboxes of the control plane have owners; local lists stay as they were.
    ...(r.owner ? { owner: r.owner } : {}),
  };
}

/**
 * An item's work as overlap checks see it, from what the item carries; items from an older
 * control plane without `changed_files` count as unchanged, without `unexported` as exported.
 */
export function workOfItem(i: ListItemView): WorkOnRepo {
  return {
    name: i.name,
    repo: i.repo,
    files: i.changed_files ?? [],
    destroyed: i.state === "destroyed",
    unexported: i.unexported ?? false,
  };
}

/** The list with each item's overlaps among the others (decisions/overlaps.ts), from what the items carry. */
export function withOverlaps(items: readonly ListItemView[]): ListItemView[] {
  const found = overlapsAmong(items.map(workOfItem));
  return items.map((i) => ({ ...i, overlaps: found.get(i.name) ?? [] }));
}

/** `alpine status --json`. */
export function statusView(
  orchestrator: Pick<Orchestrator, "blockers">,
  record: SandboxRecord,
  probe: Probe,
  lease: Lease | null,
  config: AlpineConfig,
  webUrl?: string | null,
  overlaps: Overlap[] = [],
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
      agent_reason: s
        ? (s.agent.reason ?? null)
        : probe.state === "ok"
          ? null
          : (record.agent_reason ?? null),
      usage: s?.agent.usage ?? record.usage ?? null,
      opencode_version: s?.opencode.version ?? null,
      opencode_restarts: s?.opencode.restarts ?? null,
      egress: s?.egress ?? null,
      environment: s?.environment ?? null,
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
      ? taskView(record, s?.task?.session_id === record.task.session_id ? s.task : null)
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
    overlaps,
  };
}
export type StatusView = ReturnType<typeof statusView>;

/**
 * The record's task as `status` shows it: sandboxd's word when it answers for that task, else
 * what the record last observed; a task still running in a sandbox that no longer runs was
 * interrupted.
 */
function taskView(record: SandboxRecord, live: SandboxdStatus["task"] | null) {
  const task = record.task!;
  const stopped = record.state !== "running" && record.state !== "completed";
  const state =
    live?.state ??
    (task.state === "running" || (!task.state && !task.finished_at)
      ? stopped
        ? "interrupted"
        : "unknown"
      : (task.state ?? "completed"));
  return { ...task, state, usage: live?.usage ?? task.usage ?? null };
}

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
  overlaps: Overlap[];
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
    overlaps: result.overlaps ?? [],
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
  /** With --wait in the CLI: how the wait ended (operations/wait.ts). */
  wait?: import("./operations/wait.ts").WaitItemView;
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
