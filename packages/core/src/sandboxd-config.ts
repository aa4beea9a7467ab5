import type { AlpineConfig } from "./config.ts";
import type { SandboxdConfigInput } from "./sandboxd-api.ts";
import type { SandboxSecret } from "./secrets.ts";

/**
 * Where the sandbox image (image/Dockerfile) keeps a sandbox: the volume or
 * disk mounted at `root` and the OpenCode binary it ships. Shared by every
 * provider that runs the image (docker, Cloudflare Containers).
 */
export const SANDBOX_IMAGE = { root: "/sandbox", opencode_bin: "/opt/alpine/bin/opencode" } as const;

/** What every provider gives sandboxd at start; see SandboxdConfigSchema for each field. */
export interface SandboxdStartInput {
  sandbox: { sandbox_id: string; name: string; config: AlpineConfig };
  token: string;
  /** Where sandboxd listens (port 0: a free one). */
  listen: { host: string; port: number };
  /**
   * The runtime's own dir (absolute): workspace, home, tmp, logs and
   * checkpoints are its subdirs, the same layout on a host and in the image.
   */
  root: string;
  isolation: "bubblewrap" | "none";
  opencode_bin: string;
  /** OpenCode's auth.json entries; left out for a runtime started before its sandbox is known (warm pool). */
  auth?: Record<string, unknown>;
  /** Repo secrets (`alpine secrets`): setup gets all, the agent those marked `agent`. */
  secrets?: SandboxSecret[];
  /** Settings only some providers have (host masks, repo cache, passed-on env, warm or prestart). */
  extra?: Pick<
    SandboxdConfigInput,
    | "mask_paths"
    | "read_only_paths"
    | "repo_cache_dir"
    | "env"
    | "warm"
    | "prestart"
    | "log_stderr"
    | "exit_checkpoint"
  >;
}

/**
 * sandboxd's start-up config (SandboxdConfigSchema's input), built the same
 * way for every provider. It holds secrets (token, auth), so it only ever
 * travels over sandboxd's stdin or the container's start call.
 */
export function sandboxdStartConfig(input: SandboxdStartInput): SandboxdConfigInput {
  const root = input.root.replace(/\/+$/, "");
  const { opencode, github, sandbox } = input.sandbox.config;
  const modelProvider = opencode.model?.split("/")[0];
  const providers = [...new Set([...(modelProvider ? [modelProvider] : []), ...opencode.auth_providers])];
  return {
    sandbox_id: input.sandbox.sandbox_id,
    name: input.sandbox.name,
    token: input.token,
    host: input.listen.host,
    port: input.listen.port,
    workspace_dir: `${root}/workspace`,
    home_dir: `${root}/home`,
    tmp_dir: `${root}/tmp`,
    log_file: `${root}/logs/sandboxd.log`,
    checkpoint_dir: `${root}/checkpoints`,
    isolation: input.isolation,
    opencode_bin: input.opencode_bin,
    opencode: {
      model: opencode.model,
      config: opencode.config,
      ...(input.auth ? { auth: input.auth } : {}),
      providers,
    },
    egress: sandbox.egress,
    branch_prefix: github.branch_prefix,
    ...(input.secrets?.length ? { secrets: input.secrets } : {}),
    ...input.extra,
  };
}

/**
 * sandboxd's start-up config in the sandbox image (docker, Cloudflare
 * Containers): the image's layout and OpenCode, and no bubblewrap, the
 * container being the isolation boundary.
 */
export function imageSandboxdConfig(
  input: Omit<SandboxdStartInput, "root" | "isolation" | "opencode_bin">,
): SandboxdConfigInput {
  return sandboxdStartConfig({
    ...input,
    root: SANDBOX_IMAGE.root,
    isolation: "none",
    opencode_bin: SANDBOX_IMAGE.opencode_bin,
  });
}
