import { z } from "zod";
import { EffectiveEnvironmentSchema, EnvironmentStatusSchema } from "./environment.ts";
import { STATES } from "./lifecycle.ts";
import { PROVIDER_KINDS } from "./provider-kinds.ts";
import { REASON_CODES } from "./reasons.ts";

/**
 * The contract: sandbox records as stored, events, and every `--json` output
 * (docs/json-contract.md). docs/schemas/*.json are generated from these.
 */

export const SandboxStateSchema = z.enum(STATES);
export const AgentStateSchema = z.enum([
  "idle",
  "busy",
  "needs_input",
  "retry",
  "error",
  "budget",
  "unknown",
]);
export type AgentState = z.infer<typeof AgentStateSchema>;
export const ProviderKindSchema = z.enum(PROVIDER_KINDS);
export type ProviderKind = z.infer<typeof ProviderKindSchema>;
export const ProbeStateSchema = z.enum(["ok", "unavailable", "not_running", "unknown"]);

const isoTime = z.string().describe("ISO-8601 UTC time");

export const ErrorOutputSchema = z
  .strictObject({
    error: z.string(),
    exit_code: z.union([z.literal(1), z.literal(2)]),
    reason_code: z.enum(REASON_CODES as [string, ...string[]]),
    retryable: z.boolean(),
    details: z.record(z.string(), z.unknown()),
  })
  .describe("Every error, with --json, on stdout");

export const LeaseSchema = z.object({
  id: z.string(),
  type: z.string(),
  holder: z.string().describe("host:pid of the process holding it"),
  host: z.string(),
  pid: z.number().int(),
  operation_id: z.string(),
  acquired_at: isoTime,
  expires_at: isoTime,
});
export type Lease = z.infer<typeof LeaseSchema>;

export const RuntimeSchema = z.object({
  /** Provider-specific handle (pid, dir, container id…); never a secret. */
  handle: z.record(z.string(), z.unknown()),
  web_url: z.string().nullable(),
});

/** Tokens and cost from OpenCode's assistant messages (cost in USD, 0 where the provider reports none). */
export const UsageSchema = z.object({
  input: z.number().int(),
  output: z.number().int(),
  reasoning: z.number().int(),
  cache_read: z.number().int(),
  cache_write: z.number().int(),
  cost: z.number(),
});
export type Usage = z.infer<typeof UsageSchema>;

export const TaskRecordSchema = z.object({
  prompt_summary: z.string(),
  session_id: z.string().nullable(),
  started_at: isoTime,
  finished_at: isoTime.nullable(),
  /** How the task ended as last observed (absent in records older than this field). */
  state: z.enum(["running", "completed", "failed", "interrupted"]).optional(),
  /** What the task's turn spent as last observed. */
  usage: UsageSchema.optional(),
});

/** The latest verified checkpoint of a sandbox. */
export const CheckpointRecordSchema = z.object({
  id: z.string(),
  verified: z.boolean(),
  content_hash: z.string(),
  tree_hash: z.string(),
  head_commit: z.string(),
  bytes: z.number().int(),
  created_at: isoTime,
});
export type CheckpointRecord = z.infer<typeof CheckpointRecordSchema>;

/** The latest export of a sandbox's work. */
export const ExportRecordSchema = z.object({
  branch: z.string(),
  commit: z.string(),
  tree_hash: z.string().nullable(),
  remote: z.string().nullable(),
  pushed_at: isoTime.nullable(),
  pr_url: z.string().nullable(),
  patch_file: z.string().nullable(),
  exported_at: isoTime,
});
export type ExportRecord = z.infer<typeof ExportRecordSchema>;

/**
 * The files the sandbox changed against its base commit, as the last probe of its workspace saw
 * them (status, task --wait, export, the Cloudflare alarm); `list`'s overlap warnings read it.
 */
export const ChangesRecordSchema = z.object({
  files: z.array(z.string()),
  tree_hash: z
    .string()
    .nullable()
    .describe("the workspace's tree then; equal to export.tree_hash once exported"),
  seen_at: isoTime,
});
export type ChangesRecord = z.infer<typeof ChangesRecordSchema>;

/** `overlaps` in list/status/export: another sandbox on the same repo and the files both changed. */
export const OverlapSchema = z.object({ name: z.string(), files: z.array(z.string()) });

/**
 * How a `suspended` sandbox was left (docs/durability.md, "Suspension"): its work in a verified
 * checkpoint or in the workspace its provider keeps, the workspace as it was, the disk it holds.
 */
export const SuspensionRecordSchema = z.object({
  at: isoTime,
  saved: z.enum(["checkpoint", "kept_workspace"]),
  disk_bytes: z.number().int().nonnegative().nullable(),
  workspace: z
    .object({ dirty: z.boolean(), ahead: z.number().int(), tree_hash: z.string().nullable() })
    .nullable(),
  /** The state it was suspended from, and goes back to when resumed. */
  from: z.enum(["running", "completed"]),
});
export type SuspensionRecord = z.infer<typeof SuspensionRecordSchema>;

export const SandboxRecordSchema = z.object({
  id: z.string(),
  name: z.string(),
  provider: ProviderKindSchema,
  repo: z.string(),
  ref: z.string().nullable(),
  branch: z.string(),
  image_profile: z.string(),
  state: SandboxStateSchema,
  created_at: isoTime,
  updated_at: isoTime,
  last_activity: isoTime.nullable(),
  agent: AgentStateSchema,
  /** Why the agent is in its state, as last observed (docs/json-contract.md, "Agent states"). */
  agent_reason: z.string().nullable().optional(),
  /** What every session of the sandbox spent, as last observed. */
  usage: UsageSchema.optional(),
  /** What `alpine task --budget +N` added to config `sandbox.budget` for this sandbox, summed. */
  budget_raise: z.object({ tokens: z.number(), cost: z.number() }).optional(),
  runtime: RuntimeSchema.nullable(),
  task: TaskRecordSchema.nullable(),
  checkpoint: CheckpointRecordSchema.nullable(),
  export: ExportRecordSchema.nullable(),
  /** Absent in records written before overlap warnings, and until a probe saw the workspace. */
  changes: ChangesRecordSchema.nullable().optional(),
  error: ErrorOutputSchema.nullable(),
  /** Set while the sandbox is `suspended`; absent or null otherwise. */
  suspension: SuspensionRecordSchema.nullable().optional(),
  /**
   * Who launched it first, as a control-plane principal id (`github:<login>`, `access:<email>`,
   * `admin`); absent or null for local sandboxes and records from before identities.
   */
  owner: z.string().nullable().optional(),
  /** Bumped on every write; writes compare it (optimistic concurrency on top of the lease). */
  version: z.number().int(),
});
export type SandboxRecord = z.infer<typeof SandboxRecordSchema>;

export const EventSchema = z.object({
  seq: z.number().int().optional(),
  sandbox_id: z.string(),
  name: z.string(),
  at: isoTime,
  kind: z.enum(["transition", "lease_takeover", "note"]),
  from: SandboxStateSchema.nullable(),
  to: SandboxStateSchema.nullable(),
  operation_id: z.string().nullable(),
  reason: z.string(),
});
export type StoredEvent = z.infer<typeof EventSchema>;

// ---- --json outputs (docs/json-contract.md) ----

export const LaunchOutputSchema = z.object({
  name: z.string(),
  id: z.string(),
  state: SandboxStateSchema,
  provider: ProviderKindSchema,
  repo: z.string(),
  ref: z.string().nullable(),
  branch: z.string(),
  image_profile: z.string(),
  web_url: z.string().nullable().describe("sandboxd's address; use `alpine open` for a login link"),
  reused: z.boolean().describe("the sandbox was already running and was left as it was"),
  resumed: z.boolean().describe("a stopped sandbox was provisioned again"),
  task_accepted: z.boolean(),
  session_id: z.string().nullable(),
  operation_id: z.string(),
});

export const ListItemSchema = z.object({
  name: z.string(),
  id: z.string(),
  provider: ProviderKindSchema,
  repo: z.string(),
  branch: z.string().optional().describe("the branch `export` pushes the sandbox's work to"),
  image_profile: z.string(),
  state: SandboxStateSchema,
  agent: AgentStateSchema,
  agent_reason: z
    .string()
    .nullable()
    .describe("why the agent is in its state (what it asks, the error, the budget)"),
  usage: UsageSchema.nullable().describe("what the sandbox's agent spent; null: not observed yet"),
  last_activity: isoTime.nullable(),
  created_at: isoTime,
  changed_files: z
    .array(z.string())
    .describe("the files changed against the base commit when a probe last saw the workspace"),
  changes_seen_at: isoTime.nullable().describe("when that was (null: never)"),
  unexported: z
    .boolean()
    .optional()
    .describe(
      "its changes are not all in its latest pushed export (export's overlap warning counts only these); absent in items an older control plane stored",
    ),
  owner: z
    .string()
    .nullable()
    .optional()
    .describe(
      "the control-plane principal that launched it (`github:<login>`, `access:<email>`, `admin`); Cloudflare only",
    ),
  overlaps: z
    .array(OverlapSchema)
    .describe("other sandboxes on the same repo whose changed files intersect, from the same records"),
  /** What a `suspended` sandbox costs: the bytes of disk it holds (null: not suspended, or unknown). */
  disk_bytes: z.number().int().nonnegative().nullable().optional(),
});
export const ListOutputSchema = z.array(ListItemSchema);

/** One line of the control plane's audit log (`alpine logs --audit --json`). */
export const AuditEntrySchema = z.object({
  seq: z.number().int(),
  at: isoTime,
  principal: z.string().describe("who: `github:<login>`, `access:<email>` or `admin` (the shared token)"),
  action: z.string().describe("the route (`launch`, `task`, `teardown`, …) or `sign_in` / `sign_out`"),
  sandbox: z.string().nullable(),
  outcome: z.string().describe("`ok`, or the reason code it failed with"),
  subject: z
    .string()
    .nullable()
    .optional()
    .describe("whose sessions a `revoke_sessions` or `session_revoked` line concerns (a principal id)"),
});
export type AuditEntryView = z.infer<typeof AuditEntrySchema>;
export const AuditOutputSchema = z.array(AuditEntrySchema);

const PrincipalOutputSchema = z.object({
  id: z.string().describe("`github:<login>`, `access:<email>` or `admin`"),
  login: z.string(),
  admin: z.boolean(),
  via: z.string().describe("how it signed in: `cli` for `alpine login`"),
});

/** `alpine login --json`. */
export const LoginOutputSchema = z.object({
  url: z.string().describe("the control plane signed in to"),
  principal: PrincipalOutputSchema,
  expires_at: isoTime,
  token_file: z
    .string()
    .describe("where the CLI token is kept (mode 0600); the token itself is never printed"),
});

/** `alpine logout --json`. */
export const LogoutOutputSchema = z.object({
  url: z.string(),
  revoked: z.boolean().describe("a live CLI token was revoked on the control plane"),
});

/** identity: one sign-in session of the control plane (`alpine sessions ls --json`; admins only). */
export const SessionEntrySchema = z.object({
  id: z.string().describe("the session's id (a prefix of its token's SHA-256; never the token)"),
  principal: z.string().describe("whose: `github:<login>`"),
  kind: z.enum(["web", "cli"]).describe("`web`: a browser's cookie; `cli`: a token of `alpine login`"),
  created_at: isoTime,
  expires_at: isoTime,
  revoked_at: isoTime.nullable().describe("when it was signed out or revoked; null: not revoked"),
  live: z.boolean().describe("usable now: not revoked and not expired"),
});
export type SessionEntryView = z.infer<typeof SessionEntrySchema>;
export const SessionsLsOutputSchema = z.array(SessionEntrySchema);

/** identity: `alpine sessions revoke --json`. */
export const SessionsRevokeOutputSchema = z.object({
  revoked: z
    .array(z.string())
    .describe("the ids of the sessions this revoked (already revoked ones are not listed)"),
});
export type SessionsRevokeView = z.infer<typeof SessionsRevokeOutputSchema>;

export const ChangedFileSchema = z.object({ path: z.string(), status: z.string() });

export const StatusOutputSchema = z.object({
  name: z.string(),
  id: z.string(),
  state: SandboxStateSchema,
  provider: ProviderKindSchema,
  identity: z.object({ repo: z.string(), ref: z.string().nullable(), image_profile: z.string() }),
  runtime: z.object({
    web_url: z.string().nullable(),
    probe_state: ProbeStateSchema,
    probe_at: isoTime.nullable(),
    phase: z.string().nullable(),
    agent: AgentStateSchema,
    agent_reason: z
      .string()
      .nullable()
      .describe("what the agent asks, the upstream error, what the budget spent"),
    usage: UsageSchema.nullable().describe("what the sandbox's agent spent (all its sessions)"),
    opencode_version: z.string().nullable(),
    opencode_restarts: z.number().int().nullable(),
    /** The agent's network: its policy and what the egress proxy let through or refused (null: not reported). */
    egress: z
      .object({
        policy: z.enum(["open", "allow"]),
        enforced: z.boolean(),
        allowed: z.number().int(),
        refused: z.number().int(),
        refused_hosts: z.array(z.string()),
      })
      .nullable(),
    /** The repo's environment in effect, its setup and start services (docs/environments.md); null: not reported. */
    environment: EnvironmentStatusSchema.nullable().optional(),
    /** Previews: declared ports and the ones the agent listens on ([] when not reported). */
    ports: z.array(
      z.object({
        port: z.number().int(),
        declared: z.boolean().describe("the environment declares it (environment.ports, forwardPorts)"),
        listening: z.boolean().describe("something in the sandbox listens on it now"),
      }),
    ),
  }),
  workspace: z
    .object({
      branch: z.string(),
      head: z.string().nullable(),
      dirty: z.boolean(),
      changed_files: z.array(ChangedFileSchema),
      ahead: z.number().int(),
    })
    .nullable(),
  durability: z
    .object({
      checkpoint_id: z.string().nullable(),
      verified: z.boolean(),
      content_hash: z.string().nullable(),
      created_at: isoTime.nullable(),
    })
    .nullable(),
  export: z
    .object({
      branch: z.string(),
      commit: z.string(),
      pushed_at: isoTime.nullable(),
      pr_url: z.string().nullable(),
    })
    .nullable(),
  task: TaskRecordSchema.extend({
    state: z.string().describe("running, completed, failed, interrupted, or unknown"),
    usage: UsageSchema.nullable(),
  }).nullable(),
  operation: LeaseSchema.pick({
    id: true,
    type: true,
    holder: true,
    acquired_at: true,
    expires_at: true,
  }).nullable(),
  teardown: z.object({ auto_teardown: z.boolean(), blockers: z.array(z.string()) }),
  confinement: z
    .object({
      boundary: z.enum(["bubblewrap", "container", "none"]),
      read_only: z
        .array(z.string())
        .nullable()
        .describe("host paths the agent can read; null: none (container) or all (none)"),
      read_write: z.array(z.string()).nullable(),
      warning: z.string().nullable().describe("set when the agent runs unconfined"),
    })
    .nullable()
    .describe("what the agent can see of the host; null until a local sandbox's sandboxd answered"),
  last_activity: isoTime.nullable(),
  error: ErrorOutputSchema.nullable(),
  overlaps: z
    .array(OverlapSchema)
    .describe(
      "other sandboxes on the same repo whose changed files (as their records last saw them) intersect this one's",
    ),
});

export const OpenOutputSchema = z.object({
  name: z.string(),
  web_url: z.string().describe("one-time login link, valid 60 s"),
  opened: z.boolean(),
  port: z
    .number()
    .int()
    .optional()
    .describe("the previewed port (open --port); the link is that port's own origin"),
});

export const WaitItemSchema = z.object({
  name: z.string(),
  outcome: z
    .enum(["done", "input", "error", "budget", "gone", "timeout"])
    .describe("why the wait on this sandbox stopped (docs/cli.md, `alpine wait`)"),
  reason: z.string().describe("one line a person reads"),
  state: SandboxStateSchema.nullable().describe("the sandbox's state as last seen; null: never seen"),
  agent: AgentStateSchema.nullable(),
  task_state: z.string().nullable(),
  waited_ms: z.number().int(),
});

export const WaitOutputSchema = z.object({
  for: z.enum(["done", "input", "any"]),
  exit_code: z.number().int().describe("the command's exit code (docs/cli.md, `alpine wait`)"),
  waited_ms: z.number().int(),
  sandboxes: z.array(WaitItemSchema),
});

export const TaskOutputSchema = z.object({
  name: z.string(),
  session_id: z.string(),
  state: SandboxStateSchema,
  wait: WaitItemSchema.optional().describe("with --wait: how the wait ended (as `alpine wait` reports it)"),
});

export const DiffFileSchema = z.object({
  path: z.string(),
  status: z.string(),
  insertions: z.number().int(),
  deletions: z.number().int(),
});
export const DiffOutputSchema = z.object({
  name: z.string(),
  files: z.array(DiffFileSchema),
  patch: z.string(),
});

export const ExportOutputSchema = z.object({
  name: z.string(),
  state: SandboxStateSchema,
  branch: z.string().nullable(),
  commit: z.string().nullable(),
  source: z.enum(["workspace", "checkpoint"]),
  pushed: z.boolean(),
  remote: z.string().nullable(),
  pr_url: z.string().nullable(),
  files_changed: z.number().int(),
  insertions: z.number().int(),
  deletions: z.number().int(),
  checkpoint_id: z.string().nullable(),
  auto_tore_down: z.boolean(),
  exported_at: isoTime,
  overlaps: z
    .array(OverlapSchema)
    .describe("other sandboxes' unexported work on the same repo touching the same files (a warning)"),
});

export const CheckpointOutputSchema = z.object({
  name: z.string(),
  checkpoint_id: z.string(),
  verified: z.boolean(),
  content_hash: z.string(),
  bytes: z.number().int(),
  created_at: isoTime,
});

export const TeardownOutputSchema = z.object({
  name: z.string(),
  state: SandboxStateSchema,
  checkpoint_id: z.string().nullable(),
  destroyed: z.boolean(),
  forced: z.boolean(),
});

export const GcOutputSchema = z.object({
  torn_down: z.array(z.string()),
  kept: z.array(z.object({ name: z.string(), reason: z.string() })),
  dry_run: z.boolean(),
  /** Prepared environments pruned (unused longer than the retention; docs/environments.md). */
  environments_pruned: z.array(z.string()).optional(),
  /** Sandbox ids whose notification ledger was pruned (destroyed, untouched 14 days; docs/config.md, notify). */
  notify_ledgers_pruned: z.array(z.string()).optional(),
});

/** One prepared environment (docs/environments.md). */
export const PreparedEnvironmentSchema = z.object({
  key: z.string().describe("sha256 of repo, image, setup commands and key files' content"),
  provider: z.enum(["local", "docker", "cloudflare"]),
  repo: z.string().nullable(),
  image: z.string(),
  setup: z.array(z.string()),
  key_files: z.array(z.string()),
  created_at: isoTime,
  last_used_at: isoTime,
  bytes: z.number().int(),
});
export const EnvLsOutputSchema = z.object({
  environments: z.array(PreparedEnvironmentSchema),
  /** Stores that could not be read (docker not reachable), with why. */
  unavailable: z.array(z.object({ provider: z.string(), reason: z.string() })),
});
export const EnvRmOutputSchema = z.object({ removed: z.array(z.string()) });
export type EnvLsView = z.infer<typeof EnvLsOutputSchema>;
export type EnvRmView = z.infer<typeof EnvRmOutputSchema>;

export const ImageBuildOutputSchema = z.object({
  profile: z.string(),
  image: z.string(),
  image_id: z.string(),
  base_image: z.string(),
  ca_certificates: z.number().int(),
  duration_ms: z.number().int(),
});

/** `alpine dashboard --json`: printed once the dashboard listens (it then runs until Ctrl-C). */
export const DashboardOutputSchema = z.object({
  url: z.string().describe("the dashboard, on 127.0.0.1"),
  login_url: z.string().describe("one-time login link (valid 60 s, usable once); sets the session cookie"),
  expires_at: isoTime,
});

export const CloudDevOutputSchema = z.object({
  url: z.string().describe("the control plane, on 127.0.0.1"),
  containers: z
    .enum(["processes", "docker"])
    .describe("how sandboxes run: sandboxd processes, or containers workerd starts on Docker"),
  container_host: z
    .string()
    .nullable()
    .describe("the container host that runs sandboxd processes in place of Containers (null with docker)"),
  docker_host: z
    .string()
    .nullable()
    .describe("the Docker socket workerd starts containers on (null with processes)"),
  state_dir: z.string().describe("where workerd keeps Durable Object storage and R2"),
  pid: z.number().int(),
});

export const CloudDeployOutputSchema = z.object({
  dry_run: z.boolean(),
  ok: z.boolean(),
  checks: z.array(z.object({ name: z.string(), ok: z.boolean(), detail: z.string() })),
  not_checked: z.array(z.string()).describe("what could not be checked offline"),
  deployed: z.boolean(),
  url: z.string().nullable().describe("the deployed Worker's workers.dev URL"),
});

export const AuthSyncOutputSchema = z.object({
  providers: z.array(z.string()),
  missing: z.array(z.string()),
  target: z.string(),
});

const SecretScopeSchema = z
  .string()
  .describe('"global", or the repository (as `launch` resolves it) the secret belongs to');

export const SecretsSetOutputSchema = z.object({
  name: z.string(),
  scope: SecretScopeSchema,
  agent: z.boolean().describe("the agent's environment gets it too (else setup and start commands only)"),
  replaced: z.boolean().describe("a secret of that name and scope was there before"),
});

export const SecretsLsOutputSchema = z.object({
  secrets: z
    .array(
      z.object({
        name: z.string(),
        scope: SecretScopeSchema,
        agent: z.boolean(),
        updated_at: z.string(),
      }),
    )
    .describe("never values"),
});

export const SecretsRmOutputSchema = z.object({
  name: z.string(),
  scope: SecretScopeSchema,
  removed: z.literal(true),
});

export const ConfigShowOutputSchema = z.object({
  config: z.record(z.string(), z.unknown()),
  sources: z.record(z.string(), z.string()),
  files: z.array(z.string()),
  /** The repo's environment in effect for the checkout of the current directory (docs/environments.md). */
  environment: z.object({
    /** The devcontainer.json read (absolute path), null when the checkout has none. */
    devcontainer: z.string().nullable(),
    effective: EffectiveEnvironmentSchema,
  }),
});

export const DoctorCheckSchema = z.object({
  name: z.string(),
  ok: z.boolean(),
  version: z.string().nullable(),
  detail: z.string(),
});
export const DoctorOutputSchema = z.object({
  checks: z.array(DoctorCheckSchema),
  isolation: z.enum(["bubblewrap", "none"]),
  sandbox_sees: z
    .object({ read_only: z.array(z.string()), read_write: z.array(z.string()) })
    .nullable()
    .describe("what a local sandbox's agent can see under bubblewrap; null without isolation (everything)"),
  alpine_home: z.string(),
});

export const LogsOutputSchema = z.object({
  name: z.string(),
  events: z.array(EventSchema),
  lines: z.array(z.string()),
});

/** `alpine version --json`: what is installed, for bug reports. */
export const VersionOutputSchema = z.object({
  alpine: z.string(),
  node: z.string(),
  /** The OpenCode version sandboxes run, as alpine pins it. */
  opencode: z.string(),
  /** Node's process.platform, e.g. linux, darwin. */
  platform: z.string(),
  /** Node's process.arch, e.g. x64, arm64. */
  arch: z.string(),
});
export type VersionOutput = z.infer<typeof VersionOutputSchema>;

/** Name → schema, for docs/schemas generation and contract tests. */
export const OUTPUT_SCHEMAS = {
  error: ErrorOutputSchema,
  launch: LaunchOutputSchema,
  list: ListOutputSchema,
  status: StatusOutputSchema,
  open: OpenOutputSchema,
  task: TaskOutputSchema,
  wait: WaitOutputSchema,
  diff: DiffOutputSchema,
  export: ExportOutputSchema,
  checkpoint: CheckpointOutputSchema,
  teardown: TeardownOutputSchema,
  gc: GcOutputSchema,
  "auth-sync": AuthSyncOutputSchema,
  "secrets-set": SecretsSetOutputSchema,
  "secrets-ls": SecretsLsOutputSchema,
  "secrets-rm": SecretsRmOutputSchema,
  "config-show": ConfigShowOutputSchema,
  doctor: DoctorOutputSchema,
  logs: LogsOutputSchema,
  "logs-audit": AuditOutputSchema,
  login: LoginOutputSchema,
  logout: LogoutOutputSchema,
  "sessions-ls": SessionsLsOutputSchema,
  "sessions-revoke": SessionsRevokeOutputSchema,
  "image-build": ImageBuildOutputSchema,
  "env-ls": EnvLsOutputSchema,
  "env-rm": EnvRmOutputSchema,
  dashboard: DashboardOutputSchema,
  "cloud-dev": CloudDevOutputSchema,
  "cloud-deploy": CloudDeployOutputSchema,
  version: VersionOutputSchema,
} as const;
