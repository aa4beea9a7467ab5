import { z } from "zod";
import { BudgetSchema, EgressHostSchema } from "./config.ts";
import { EnvironmentStatusSchema } from "./environment.ts";
import { NOTIFY_EVENTS } from "./notify.ts";

export type { EnvironmentStatus, ServiceStatus } from "./environment.ts";

import { REASON_CODES, type ReasonCode } from "./reasons.ts";
import { AgentStateSchema, type Usage, UsageSchema } from "./schemas.ts";

/**
 * The sandboxd contract: its start-up config, every request and response of
 * its HTTP API (the client is sandboxd-client.ts; how sandboxd behaves is in
 * packages/sandboxd/README.md). Runtime-agnostic, like all of core.
 */

const isoTime = z.string().describe("ISO-8601 UTC time");
const absPath = z.string().min(1).startsWith("/", "must be an absolute path");

export const SandboxdErrorSchema = z.object({
  error: z.string(),
  exit_code: z.union([z.literal(1), z.literal(2)]),
  reason_code: z.enum(REASON_CODES as [ReasonCode, ...ReasonCode[]]),
  retryable: z.boolean(),
  details: z.record(z.string(), z.unknown()),
});
export type SandboxdErrorJson = z.infer<typeof SandboxdErrorSchema>;

// ---------------------------------------------------------------------------
// Start-up config: one JSON object on sandboxd's stdin (secrets never in argv/env/disk).

/** sandboxd's `notify` (SandboxdConfigSchema and AdoptRequestSchema say when it comes). */
const notifySchema = z.object({
  on: z.array(z.enum(NOTIFY_EVENTS)),
  webhooks: z.array(
    z.object({ url: z.string(), format: z.enum(["json", "slack"]), secret: z.string().optional() }),
  ),
  desktop: z.boolean(),
  ledger_file: absPath.optional(),
});

export const SandboxdConfigSchema = z.object({
  sandbox_id: z.string().min(1),
  name: z.string().min(1),
  /** Bearer token for /v1. */
  token: z.string().min(16, "token must be at least 16 characters"),
  host: z.string().min(1).default("127.0.0.1"),
  /** 0 = pick a free port. */
  port: z.number().int().min(0).max(65535).default(0),
  workspace_dir: absPath,
  home_dir: absPath,
  tmp_dir: absPath,
  log_file: absPath,
  /**
   * Also write every log line to stderr: for a container, whose platform keeps what its
   * process prints (Cloudflare's dashboard and `wrangler tail`) after its disk is gone.
   */
  log_stderr: z.boolean().optional(),
  isolation: z.enum(["bubblewrap", "none"]),
  /**
   * Host paths hidden from the agent under bubblewrap even where they lie
   * under a visible path (a tmpfs over a dir, /dev/null over a file).
   */
  mask_paths: z.array(absPath).default([]),
  /**
   * More host paths the agent may read under bubblewrap (`sandbox.read_only_paths`);
   * everything else of the host but the system's runtime dirs stays invisible.
   */
  read_only_paths: z.array(absPath).default([]),
  opencode_bin: absPath,
  opencode: z
    .object({
      /** "provider/model" */
      model: z.string().includes("/", { message: 'model must be "provider/model"' }).optional(),
      /** Passed through to OpenCode's config (OPENCODE_CONFIG_CONTENT). */
      config: z.record(z.string(), z.unknown()).optional(),
      /** auth.json entries, whole, keyed by provider id. */
      auth: z.record(z.string(), z.unknown()).optional(),
      /**
       * Providers whose traffic goes through sandboxd's model broker (the
       * agent gets the broker's address and a per-sandbox token, never the
       * key): the model's and `opencode.auth_providers`. Known at start, so a
       * warm OpenCode (credentials come at adoption) is configured for them.
       */
      providers: z.array(z.string().min(1)).default([]),
    })
    .default({ providers: [] }),
  /**
   * The agent's network (config `sandbox.egress`): `open` shares sandboxd's;
   * `allow` closes it (a network namespace under bubblewrap) but for sandboxd's
   * egress proxy, which lets through the default hosts and these.
   */
  egress: z
    .union([
      z.literal("open"),
      z.object({
        allow: z.array(EgressHostSchema).default([]),
        /**
         * Names resolved to these addresses instead of by DNS, exempt from the
         * rule that an allowed name never reaches a loopback or private address.
         * Never from user config: only what starts sandboxd sets it (tests).
         */
        pin: z.record(z.string(), z.string()).optional(),
      }),
    ])
    .default({ allow: [] }),
  branch_prefix: z.string().min(1).default("alpine"),
  /**
   * Where checkpoint artifacts and staged restore artifacts live: sandboxd's own
   * dir, never writable by the agent (not inside workspace_dir, home_dir or
   * tmp_dir). Default `<dirname(workspace_dir)>/checkpoints`.
   */
  checkpoint_dir: absPath.optional(),
  /**
   * The launching host's network settings for the agent (only PASS_THROUGH_ENV
   * names are used). They travel with the config, so a container needs no
   * `docker run -e` (its config is stored on the Docker host's disk).
   */
  env: z.record(z.string(), z.string()).optional(),
  /**
   * A directory where sandboxd keeps one bare object cache per repository
   * (shared by the sandboxes of one host, guarded by a lock file), so a
   * second clone of the same repo does not download it again. Optional: a
   * provider without host storage (a container) leaves it out and sandboxd
   * clones plainly.
   */
  repo_cache_dir: absPath.optional(),
  /**
   * With a repo cache: a repo whose work tree has at least this many files
   * gets a spare checkout after each launch, which the next launch of the
   * repo moves into its workspace instead of writing every file (default
   * 1000; sandboxd/src/spare-checkout.ts).
   */
  spare_min_files: z.number().int().nonnegative().optional(),
  /**
   * Started ahead of any launch (warm pool): OpenCode starts at once on the
   * empty workspace, without model credentials; `POST /v1/adopt` gives the
   * sandbox its identity and credentials before `POST /v1/init`. Not adopted
   * within `idle_exit_ms`, sandboxd stops by itself (a pool never leaks
   * processes).
   */
  warm: z.object({ idle_exit_ms: z.number().int().min(1000) }).optional(),
  /**
   * The repo the launch that starts this sandboxd will `POST /v1/init` with:
   * sandboxd starts OpenCode at once (its mounts include that repo's object
   * cache), before it listens, instead of when the init request arrives. Only
   * for an init of a new or kept workspace, never before a restore (OpenCode
   * must not open its data dir before the checkpoint's is back). An init for
   * another repo is refused as usual (the workspace's repo decides).
   */
  prestart: z.object({ repo: z.string().min(1) }).optional(),
  /**
   * The launch that starts this sandboxd will restore a checkpoint whose OpenCode data artifact
   * is this file of the host's checkpoint store (verified there; sandboxd checks its sha256 and
   * size again on a private copy): sandboxd unpacks it and starts OpenCode at boot, while the
   * launcher stages the artifacts and the workspace is restored. The restore keeps that OpenCode
   * only when its checkpoint's data artifact has this sha256; otherwise it starts over.
   */
  prestart_restore: z
    .object({
      opencode_data: z.object({
        path: z.string().min(1),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        bytes: z.number().int().min(0),
      }),
    })
    .optional(),
  /**
   * A runtime whose disk dies with it (a Cloudflare Container, replaced by a rollout): on
   * SIGTERM, sandboxd writes a checkpoint of unsaved work into checkpoint_dir (as
   * `POST /v1/checkpoint` would), reports it in `GET /v1/status` as `exit_checkpoint`, and keeps
   * serving its API until the control plane has copied it (its `DELETE`) or `hold_ms` passed,
   * then exits. Absent: SIGTERM stops at once (the local and docker providers keep the disk).
   */
  exit_checkpoint: z.object({ hold_ms: z.number().int().min(0) }).optional(),
  /**
   * Notifications sandboxd sends when the agent is done, needs input, fails or reaches its budget
   * (config `notify`, core/src/notify.ts). `secret` is the webhook's HMAC secret, read by the CLI
   * from the variable `secret_env` names: this config travels on stdin only. `ledger_file`: where
   * sandboxd remembers what it delivered and what is pending, outside the runtime dir (so it
   * survives a teardown and resume) and out of the agent's reach; absent: in `checkpoint_dir`'s
   * parent (survives a restart of sandboxd only).
   */
  notify: notifySchema.optional(),
  /**
   * Scale-to-zero where the disk outlives the runtime (local, docker): once the agent has been
   * idle and nobody used the API or web UI (status reads aside) for `after_ms`, sandboxd stops
   * OpenCode, logs `suspended: idle` with the workspace's state and the disk it holds, and exits;
   * the next alpine command records the sandbox `suspended` (docs/durability.md, "Suspension").
   */
  idle_suspend: z.object({ after_ms: z.number().int().min(1000) }).optional(),
  /**
   * The repo's environment as alpine's config declares it (`environment:`); sandboxd reads
   * the repo's .devcontainer/devcontainer.json after the clone and lays this over it
   * (core/src/environment.ts): a non-empty `setup`/`start` replaces the devcontainer's
   * commands, `env` merges over it, `ports` add to it (docs/environments.md).
   */
  environment: z
    .object({
      setup: z.array(z.string()),
      start: z.array(z.string()),
      env: z.record(z.string(), z.string()),
      ports: z.array(z.number().int()),
    })
    .optional(),
  /**
   * Repo secrets (`alpine secrets`): setup and start commands get every one in their
   * environment, the agent (OpenCode's environment) only those with `agent`. Redacted
   * from sandboxd's log; never written to disk.
   */
  secrets: z.array(z.object({ name: z.string().min(1), value: z.string(), agent: z.boolean() })).optional(),
  /**
   * The prepared-environment cache (docs/environments.md): after a successful setup sandboxd
   * saves what it produced under `dir`, keyed by `image`, the setup commands and the content
   * of the key files (`key_files`, default the lockfiles present); a launch with the same key
   * restores it instead of running setup. Without `dir` nothing is cached.
   */
  prepared: z
    .object({
      dir: absPath.optional(),
      image: z.string().min(1),
      key_files: z.array(z.string().min(1)).nullable().default(null),
    })
    .optional(),
});
export type SandboxdConfigInput = z.input<typeof SandboxdConfigSchema>;
export type SandboxdConfig = z.output<typeof SandboxdConfigSchema>;

/** The one line sandboxd writes on stdout once it listens. */
export const SandboxdListeningSchema = z.object({
  event: z.literal("listening"),
  port: z.number().int(),
  pid: z.number().int(),
});
/** Written instead of the listening line when sandboxd cannot start (then it exits 1). */
export const SandboxdStartErrorSchema = z.object({ event: z.literal("error"), error: SandboxdErrorSchema });
export const SandboxdStartLineSchema = z.discriminatedUnion("event", [
  SandboxdListeningSchema,
  SandboxdStartErrorSchema,
]);
export type SandboxdStartLine = z.infer<typeof SandboxdStartLineSchema>;

// ---------------------------------------------------------------------------
// API

export const SANDBOXD_PHASES = [
  "booting",
  "cloning",
  "restoring",
  /** The environment's setup (or the restore of its prepared environment) runs. */
  "setting_up",
  "starting_agent",
  "ready",
  "failed",
] as const;
export const SandboxdPhaseSchema = z.enum(SANDBOXD_PHASES);
export type SandboxdPhase = z.infer<typeof SandboxdPhaseSchema>;

export const HealthResponseSchema = z.object({ ok: z.literal(true), phase: SandboxdPhaseSchema });
export type HealthResponse = z.infer<typeof HealthResponseSchema>;

export const GitCredentialsSchema = z.object({ username: z.string(), password: z.string() });

export const InitRequestSchema = z.object({
  /** A git URL or an absolute local path. */
  repo: z.string().min(1),
  /** Branch, tag or commit; default: the remote's default branch. */
  ref: z.string().min(1).optional(),
  /** The sandbox branch to create from ref; default `<branch_prefix>/<name>`. */
  branch: z.string().min(1).optional(),
  /** Used for this clone only; never stored. */
  credentials: GitCredentialsSchema.optional(),
  /** Do not run the environment's setup (nor restore a prepared environment); start commands still run. */
  skip_setup: z.boolean().optional(),
});
export type InitRequest = z.infer<typeof InitRequestSchema>;

/** POST /v1/adopt: a warm (pre-started) sandboxd becomes this sandbox. */
export const AdoptRequestSchema = z.object({
  sandbox_id: z.string().min(1),
  name: z.string().min(1),
  /** OpenCode auth.json entries, whole, keyed by provider id (written 0600, read by OpenCode on use). */
  auth: z.record(z.string(), z.unknown()).optional(),
  /** The adopting sandbox's idle_suspend (a warm runtime was started before it was known). */
  idle_suspend: z.object({ after_ms: z.number().int().min(1000) }).optional(),
  /** The adopting sandbox's notifications (config `notify`, with its webhook secrets): as at a start. */
  notify: notifySchema.optional(),
});
export type AdoptRequest = z.infer<typeof AdoptRequestSchema>;

export const FileStatusSchema = z.enum(["added", "modified", "deleted", "renamed"]);
export type FileStatus = z.infer<typeof FileStatusSchema>;

export const ChangedFileSchema = z.object({
  path: z.string(),
  status: FileStatusSchema,
});
export type ChangedFile = z.infer<typeof ChangedFileSchema>;

export const WorkspaceStatusSchema = z.object({
  repo: z.string(),
  branch: z.string(),
  base_commit: z.string(),
  head: z.string().nullable(),
  /** Working tree (incl. untracked, not ignored) differs from HEAD. */
  dirty: z.boolean(),
  /** Everything differing from base_commit: commits, tracked and untracked-not-ignored files. */
  changed_files: z.array(ChangedFileSchema),
  /** Commits on the branch that are not in base_commit. */
  ahead: z.number().int(),
  /** git tree hash of the whole working tree (tracked + untracked, not ignored): what a checkpoint commit would hold. */
  tree_hash: z.string().nullable(),
});
export type WorkspaceStatus = z.infer<typeof WorkspaceStatusSchema>;

export { type Usage, UsageSchema };

/** `interrupted`: stopped before its end (budget reached, aborted, OpenCode restarted). */
export const TaskStateSchema = z.enum(["running", "completed", "failed", "interrupted"]);
export const TaskStatusSchema = z.object({
  session_id: z.string(),
  prompt_summary: z.string(),
  state: TaskStateSchema,
  started_at: isoTime,
  finished_at: isoTime.nullable(),
  error: SandboxdErrorSchema.nullable(),
  /** What the task's turn spent (absent from a sandboxd older than this field). */
  usage: UsageSchema.optional(),
});
export type TaskStatus = z.infer<typeof TaskStatusSchema>;

/** What the agent's network reaches and what it was refused (sandboxd's egress proxy). */
export const EgressStatusSchema = z.object({
  /** `open`: the host's network; `allow`: only the allowed hosts, through the proxy. */
  policy: z.enum(["open", "allow"]),
  /** The policy is enforced by a closed network (false: advisory, the agent could go around the proxy). */
  enforced: z.boolean(),
  /** Connections the proxy let through / refused since sandboxd started. */
  allowed: z.number().int(),
  refused: z.number().int(),
  /** The latest refused hosts (host:port), newest last, at most 10. */
  refused_hosts: z.array(z.string()),
});
export type EgressStatus = z.infer<typeof EgressStatusSchema>;

export const StatusResponseSchema = z.object({
  sandbox_id: z.string(),
  name: z.string(),
  phase: SandboxdPhaseSchema,
  error: SandboxdErrorSchema.nullable(),
  workspace: WorkspaceStatusSchema.nullable(),
  agent: z.object({
    state: AgentStateSchema,
    last_activity: isoTime.nullable(),
    session_id: z.string().nullable(),
    /** One line for a person: what the agent asks, the upstream error, what the budget spent (null: nothing to say). */
    reason: z.string().nullable().optional(),
    /** Everything the sandbox's sessions spent, as far as sandboxd has seen. */
    usage: UsageSchema.optional(),
  }),
  task: TaskStatusSchema.nullable(),
  opencode: z.object({
    version: z.string().nullable(),
    pid: z.number().int().nullable(),
    restarts: z.number().int(),
    ready: z.boolean(),
    started_at: isoTime.nullable(),
  }),
  /**
   * The checkpoint sandboxd wrote on SIGTERM and holds for the control plane to copy
   * (config `exit_checkpoint`): its manifest, artifacts at the usual checkpoint routes.
   */
  exit_checkpoint: z.lazy(() => CheckpointManifestSchema).optional(),
  /** What OpenCode can see of the host (absent from a sandboxd older than this field). */
  confinement: z
    .object({
      isolation: z.enum(["bubblewrap", "none"]),
      /** Host paths visible read-only (bubblewrap); [] without isolation (everything is). */
      read_only: z.array(z.string()),
      read_write: z.array(z.string()),
    })
    .optional(),
  egress: EgressStatusSchema.optional(),
  /** The repo's environment in effect, its setup and its start services (absent before this field). */
  environment: z.lazy(() => EnvironmentStatusSchema).optional(),
  /**
   * Previews: the ports the environment declares and the ones the agent listens on, each
   * with whether something listens there now (absent from a sandboxd older than this field).
   */
  ports: z
    .array(z.object({ port: z.number().int(), declared: z.boolean(), listening: z.boolean() }))
    .optional(),
});
export type SandboxdStatus = z.infer<typeof StatusResponseSchema>;

/** NDJSON lines of POST /v1/init. `heartbeat` keeps idle proxies from cutting a long clone. */
export const InitEventSchema = z.union([
  z.object({ type: z.literal("phase"), phase: SandboxdPhaseSchema }),
  z.object({ type: z.literal("heartbeat") }),
  /** A line of the environment's setup output (also in sandboxd's log). */
  z.object({ type: z.literal("output"), line: z.string() }),
  z.object({ type: z.literal("result"), ok: z.literal(true), status: StatusResponseSchema }),
  z.object({ type: z.literal("result"), ok: z.literal(false), error: SandboxdErrorSchema }),
]);
export type InitEvent = z.infer<typeof InitEventSchema>;

export const TaskRequestSchema = z.object({
  prompt: z.string().min(1),
  /**
   * Continue this OpenCode session; default: the sandbox's conversation, the session the person
   * last used in the UI or a task last went to (docs/opencode.md, "One conversation").
   */
  session_id: z.string().min(1).optional(),
  /** Start a new session (`alpine task --new-session`); it becomes the conversation. */
  new_session: z.boolean().optional(),
  /** The session to continue when sandboxd knows no conversation (a new sandboxd on a kept workspace): the record's last task's. */
  fallback_session_id: z.string().min(1).optional(),
  /** The limits sandboxd holds the agent to from now on (config `sandbox.budget` plus `--budget` raises). */
  budget: BudgetSchema.optional(),
});
export type TaskRequest = z.infer<typeof TaskRequestSchema>;
export const TaskResponseSchema = z.object({ session_id: z.string(), accepted: z.literal(true) });
export type TaskResponse = z.infer<typeof TaskResponseSchema>;

export const DiffFileSchema = z.object({
  path: z.string(),
  status: FileStatusSchema,
  /** Set for renames: the path in base_commit. */
  old_path: z.string().optional(),
  insertions: z.number().int(),
  deletions: z.number().int(),
  binary: z.boolean().optional(),
});
export type DiffFile = z.infer<typeof DiffFileSchema>;
export const DiffResponseSchema = z.object({
  files: z.array(DiffFileSchema),
  /** Unified diff (git --binary) of the working tree vs base_commit; "" with stat. */
  patch: z.string().optional(),
});
export type DiffResponse = z.infer<typeof DiffResponseSchema>;

/** POST /v1/login: a code for the UI, or with `port` for that port's preview origin. */
export const LoginRequestSchema = z.object({ port: z.number().int().min(1).max(65535).optional() });
export type LoginRequest = z.infer<typeof LoginRequestSchema>;

/**
 * Previews through the control plane: the Worker names the preview's port in this header (its
 * hostname, `<name>--p<port>.<host>`, is not sandboxd's `<port>-<name>.localhost`). It only picks
 * which port's session cookie the request needs; the Worker drops any a client sent, and sandboxd
 * never forwards it to the app.
 */
export const PREVIEW_PORT_HEADER = "x-alpine-preview-port";

export const LoginResponseSchema = z.object({
  code: z.string(),
  expires_at: isoTime,
  /** Path to open on sandboxd's address (/auth/<code>), or with `port` on the preview origin (/__alpine/auth/<code>). */
  path: z.string(),
});
export type LoginResponse = z.infer<typeof LoginResponseSchema>;

export const ShutdownResponseSchema = z.object({ ok: z.literal(true) });

/** GET /v1/logs?tail=N: the last N lines of sandboxd's log (its own and OpenCode's), oldest first. */
export const LOGS_TAIL_MAX = 5000;
export const LogsResponseSchema = z.object({ lines: z.array(z.string()) });
export type LogsResponse = z.infer<typeof LogsResponseSchema>;
export type ShutdownResponse = z.infer<typeof ShutdownResponseSchema>;

// ---------------------------------------------------------------------------
// Checkpoints, restore, export (docs/durability.md)

/** The artifacts a checkpoint consists of (the only names the artifact routes accept). */
export const CHECKPOINT_ARTIFACTS = ["workspace.bundle", "opencode-data.tar.gz"] as const;
export const CheckpointArtifactNameSchema = z.enum(CHECKPOINT_ARTIFACTS);
/** The staged name of an earlier checkpoint's workspace.bundle a restore builds on (RestoreRequest.chain). */
export function chainLinkArtifactName(checkpointId: string): string {
  return `link.${checkpointId}.bundle`;
}
export type CheckpointArtifactName = z.infer<typeof CheckpointArtifactNameSchema>;

/** Checkpoint ids: a path segment without traversal (`ckpt_…` from the orchestrator). */
export const CHECKPOINT_ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
export const CheckpointIdSchema = z
  .string()
  .regex(CHECKPOINT_ID_PATTERN, "checkpoint ids are 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'")
  .refine((s) => !s.includes(".."), "checkpoint ids must not contain '..'");

const gitSha = z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, "must be a full git object id");
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "must be a sha256 in hex");

export const CheckpointRequestSchema = z.object({
  checkpoint_id: CheckpointIdSchema,
  created_at: isoTime,
  /**
   * The sandbox's newest verified checkpoint, checked in the store just now: what it holds need not
   * be stored again (docs/durability.md, "Incremental checkpoints"). Absent: build on no checkpoint.
   */
  parent: z.lazy(() => CheckpointManifestSchema).optional(),
  /** For asking the repo's remote which commits it holds (`git ls-remote`); never stored. */
  credentials: GitCredentialsSchema.optional(),
});
export type CheckpointRequest = z.infer<typeof CheckpointRequestSchema>;

export const CheckpointArtifactSchema = z.object({
  name: z.string().min(1),
  sha256: sha256Hex,
  bytes: z.number().int().min(0),
});
export type CheckpointArtifact = z.infer<typeof CheckpointArtifactSchema>;

/** `CheckpointManifest` of ports.ts as a schema (sandboxd writes it; the store keeps it beside the artifacts). */
export const CheckpointManifestSchema = z.object({
  schema_version: z.literal(1),
  checkpoint_id: CheckpointIdSchema,
  sandbox_id: z.string().min(1),
  created_at: isoTime,
  /** The sandbox branch at checkpoint time (the bundle holds refs/heads/<branch>). */
  branch: z.string().min(1),
  base_commit: gitSha,
  /** HEAD of the branch: the agent's commits, not the uncommitted work. */
  head_commit: gitSha,
  /** head_commit + every tracked and untracked (not ignored) change; on refs/alpine/checkpoints/<id> in the bundle. */
  checkpoint_commit: gitSha,
  /** The tree of checkpoint_commit: the workspace's content. */
  tree_hash: gitSha,
  artifacts: z.array(CheckpointArtifactSchema),
  /**
   * What workspace.bundle builds on (a thin bundle); absent: it is self-contained.
   * `checkpoints`: the earlier checkpoints of the sandbox it needs, oldest first, each with the
   * sha256 of its workspace.bundle; `upstream`: prerequisite commits the repo's remote held
   * (verified with `git ls-remote` when the checkpoint was made); `prerequisites`: the bundle's
   * own prerequisite commits.
   */
  depends_on: z
    .object({
      checkpoints: z.array(z.object({ checkpoint_id: CheckpointIdSchema, sha256: sha256Hex })),
      upstream: z.array(gitSha),
      prerequisites: z.array(gitSha),
    })
    .optional(),
});
export type CheckpointManifestData = z.infer<typeof CheckpointManifestSchema>;

/** Answer of `PUT /v1/restore/artifacts/:name`: what sandboxd received and staged. */
export const RestoreArtifactResponseSchema = z.object({
  /** A CheckpointArtifactName, or chainLinkArtifactName() of an earlier checkpoint. */
  name: z.string().min(1),
  sha256: sha256Hex,
  bytes: z.number().int().min(0),
});
export type RestoreArtifactResponse = z.infer<typeof RestoreArtifactResponseSchema>;

export const RestoreRequestSchema = z.object({
  manifest: CheckpointManifestSchema,
  /** The sandbox's repo (becomes `origin`, without credentials). */
  repo: z.string().min(1),
  /** The branch to check out at manifest.head_commit. */
  branch: z.string().min(1),
  /**
   * The earlier checkpoints manifest.depends_on names, oldest first, each verified in the store;
   * their bundles are staged as `link.<checkpoint_id>.bundle`.
   */
  chain: z.array(z.lazy(() => CheckpointManifestSchema)).optional(),
  /** For fetching the upstream commits a thin bundle builds on; never stored. */
  credentials: GitCredentialsSchema.optional(),
  /** As InitRequest's: a restored workspace lacks its ignored files, so setup runs unless skipped. */
  skip_setup: z.boolean().optional(),
});
export type RestoreRequest = z.infer<typeof RestoreRequestSchema>;

export const DeleteCheckpointResponseSchema = z.object({ ok: z.literal(true) });
export type DeleteCheckpointResponse = z.infer<typeof DeleteCheckpointResponseSchema>;

export const ExportRequestSchema = z.object({
  /** Remote branch to push to (a plain name under refs/heads). */
  branch: z.string().min(1),
  message: z
    .string()
    .min(1)
    .max(64 * 1024),
  author: z.object({ name: z.string().min(1).max(256), email: z.string().min(1).max(256) }),
  push: z.boolean(),
  /** For this push only; never stored. */
  credentials: GitCredentialsSchema.optional(),
});
export type ExportRequest = z.infer<typeof ExportRequestSchema>;

export const ExportResponseSchema = z.object({
  branch: z.string(),
  /** The commit holding all the work (pushed when `pushed`). */
  commit: gitSha,
  base_commit: gitSha,
  tree_hash: gitSha,
  /** `git diff --numstat base_commit commit`: binary files count as files with 0/0 lines. */
  files_changed: z.number().int(),
  insertions: z.number().int(),
  deletions: z.number().int(),
  pushed: z.boolean(),
  /** The URL pushed to (never with credentials); null when nothing was pushed. */
  remote: z.string().nullable(),
});
export type ExportResponse = z.infer<typeof ExportResponseSchema>;
