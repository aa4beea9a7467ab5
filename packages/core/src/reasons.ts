/**
 * The closed list of reason codes. Every failure alpine reports carries one of
 * these; the exit code and retryable flag come from this table and nowhere else.
 *
 * exit 1 = the user's input or the sandbox's state is the problem;
 * exit 2 = the system or something transient is (retrying may help).
 */
export const REASONS = {
  config_invalid: { exit: 1, retryable: false, hint: "fix the named key in the named file" },
  name_invalid: {
    exit: 1,
    retryable: false,
    hint: "names are 1-50 of [a-z0-9-], starting with a letter or digit",
  },
  usage_invalid: { exit: 1, retryable: false, hint: "see `alpine <command> --help`" },
  repo_resolution_failed: { exit: 1, retryable: false, hint: "pass --repo with a git URL or a local path" },
  repo_unreachable: {
    exit: 2,
    retryable: true,
    hint: "check the URL, your network and your git credentials",
  },
  ref_not_found: { exit: 1, retryable: false, hint: "pass --ref with a branch, tag or commit that exists" },
  branch_invalid: { exit: 1, retryable: false, hint: "use a branch name git accepts, under refs/heads" },
  image_profile_unknown: {
    exit: 1,
    retryable: false,
    hint: "add it to sandbox.image_profiles or pick a known one",
  },
  image_not_found: {
    exit: 2,
    retryable: false,
    hint: "build it with `alpine image build --profile <profile>`",
  },
  provider_unavailable: {
    exit: 2,
    retryable: true,
    hint: "run `alpine doctor` to see what this machine lacks",
  },
  container_capacity: {
    exit: 2,
    retryable: true,
    hint: "the platform has no container free for it now (max_instances, or still provisioning); retry in a minute",
  },
  sandbox_not_found: { exit: 1, retryable: false, hint: "run `alpine list` to see your sandboxes" },
  sandbox_not_running: {
    exit: 1,
    retryable: false,
    hint: "run `alpine launch <name>` to start or resume it",
  },
  sandbox_unavailable: {
    exit: 2,
    retryable: true,
    hint: "its runtime does not answer; `alpine launch <name>` recovers it",
  },
  sandbox_identity_conflict: {
    exit: 1,
    retryable: false,
    hint: "a sandbox of that name exists with another repo or profile; pick a new name or pass --force-recreate",
  },
  state_transition_invalid: {
    exit: 1,
    retryable: false,
    hint: "see `alpine status <name>` for what it can do now",
  },
  operation_in_progress: {
    exit: 2,
    retryable: true,
    hint: "another alpine command is working on it; retry shortly",
  },
  agent_start_failed: { exit: 2, retryable: true, hint: "see `alpine logs <name>` for OpenCode's output" },
  setup_failed: {
    exit: 1,
    retryable: false,
    hint: "the sandbox stays for inspection (`alpine logs`, `open`, `status`); fix the setup and launch again, or `launch --skip-setup`",
  },
  agent_busy: { exit: 1, retryable: true, hint: "wait for the agent to finish, or pass --force" },
  task_failed: { exit: 1, retryable: false, hint: "see `alpine logs <name>` for the agent's error" },
  budget_reached: {
    exit: 1,
    retryable: false,
    hint: 'raise it with `alpine task <name> --budget +N "continue"` or in config `sandbox.budget`',
  },
  export_retryable_state: {
    exit: 2,
    retryable: true,
    hint: "the sandbox is saving or tearing down; retry when it settles",
  },
  export_state_blocked: {
    exit: 1,
    retryable: false,
    hint: "export needs a running, completed or destroyed sandbox",
  },
  nothing_to_export: { exit: 1, retryable: false, hint: "the agent has not changed anything yet" },
  credentials_missing: {
    exit: 1,
    retryable: false,
    hint: "run `opencode auth login` on this machine, then `alpine auth sync`",
  },
  github_auth_missing: {
    exit: 1,
    retryable: false,
    hint: "set GITHUB_TOKEN/GH_TOKEN or configure a git credential helper",
  },
  push_rejected: {
    exit: 1,
    retryable: false,
    hint: "the remote refused the push; see details for git's reason",
  },
  pr_failed: {
    exit: 2,
    retryable: true,
    hint: "the branch was pushed; retry `alpine export --pr` to open the pull request",
  },
  checkpoint_missing: { exit: 1, retryable: false, hint: "no verified checkpoint exists for this sandbox" },
  checkpoint_failed: {
    exit: 2,
    retryable: true,
    hint: "the previous verified checkpoint is still usable; retry",
  },
  checkpoint_checksum_mismatch: {
    exit: 1,
    retryable: false,
    hint: "the checkpoint is damaged; it will not be restored",
  },
  teardown_requires_force: {
    exit: 1,
    retryable: false,
    hint: "the agent is busy; pass --force to stop it anyway",
  },
  teardown_blocked: {
    exit: 1,
    retryable: false,
    hint: "unsaved work could not be saved; see details, or pass --force",
  },
  unauthorized: { exit: 1, retryable: false, hint: "the token or login link is missing, wrong or expired" },
  forbidden: {
    exit: 1,
    retryable: false,
    hint: "only the sandbox's owner or an admin may do this; `alpine list` shows yours",
  },
  control_plane_unreachable: {
    exit: 2,
    retryable: true,
    hint: "check sandbox.control_plane_url and your network",
  },
  control_plane_error: {
    exit: 2,
    retryable: true,
    hint: "the control plane failed; retry, then check its logs",
  },
  state_store_error: {
    exit: 2,
    retryable: false,
    hint: "alpine's state database could not be used; see the message",
  },
  internal_error: {
    exit: 2,
    retryable: false,
    hint: "this is a bug in alpine; please report it with `-v` output",
  },
} as const satisfies Record<string, { exit: 1 | 2; retryable: boolean; hint: string }>;

export type ReasonCode = keyof typeof REASONS;
export const REASON_CODES = Object.keys(REASONS) as ReasonCode[];

export function isReasonCode(value: unknown): value is ReasonCode {
  return typeof value === "string" && Object.hasOwn(REASONS, value);
}
