import type { AlpineConfig } from "./config.ts";
import { suspendAfterMs } from "./orchestrator/decisions/suspend.ts";
import type { SandboxdConfigInput } from "./sandboxd-api.ts";
import type { SandboxSecret } from "./secrets.ts";

/**
 * Where the sandbox image (image/Dockerfile) keeps a sandbox: the volume or
 * disk mounted at `root` and the OpenCode binary it ships. Shared by every
 * provider that runs the image (docker, Cloudflare Containers).
 */
export const SANDBOX_IMAGE = {
  root: "/sandbox",
  opencode_bin: "/opt/alpine/bin/opencode",
  /** Where the docker provider mounts the shared prepared-environment volume (docs/environments.md). */
  environments: "/environments",
  /** A Cloudflare Container's own prepared-environment store, filled from and copied to R2 by the control plane. */
  prepared: "/sandbox/prepared",
} as const;

/** What every provider gives sandboxd at start; see SandboxdConfigSchema for each field. */
export interface SandboxdStartInput {
  /** `image`: what the runtime runs (the image profile's image; keys the prepared-environment cache). */
  sandbox: { sandbox_id: string; name: string; config: AlpineConfig; image?: string };
  /** Where this provider keeps prepared environments (absent: none are cached). */
  preparedDir?: string;
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
    | "prestart_restore"
    | "log_stderr"
    | "exit_checkpoint"
    | "notify"
    | "idle_suspend"
  >;
}

/**
 * sandboxd's start-up config (SandboxdConfigSchema's input), built the same
 * way for every provider. It holds secrets (token, auth), so it only ever
 * travels over sandboxd's stdin or the container's start call.
 */
export function sandboxdStartConfig(input: SandboxdStartInput): SandboxdConfigInput {
  const root = input.root.replace(/\/+$/, "");
  const { opencode, github, sandbox, environment } = input.sandbox.config;
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
    // alpine's layer; sandboxd lays it over the repo's devcontainer after the clone.
    environment: {
      setup: environment.setup ?? [],
      start: environment.start ?? [],
      env: environment.env ?? {},
      ports: environment.ports ?? [],
    },
    prepared: {
      ...(input.preparedDir ? { dir: input.preparedDir } : {}),
      image: input.sandbox.image ?? (input.isolation === "bubblewrap" ? "host+bubblewrap" : "host"),
      key_files: environment.cache_key_files ?? null,
    },
    ...(input.secrets?.length ? { secrets: input.secrets } : {}),
    ...input.extra,
  };
}

/**
 * sandboxd's start-up config in the sandbox image (docker, Cloudflare
 * Containers): the image's layout and OpenCode. Isolation inside the container
 * is `none` unless the provider knows the image has bubblewrap and the
 * container may create namespaces (docker with its seccomp profile); the
 * container is the boundary either way.
 */
export function imageSandboxdConfig(
  input: Omit<SandboxdStartInput, "root" | "isolation" | "opencode_bin"> & {
    isolation?: SandboxdStartInput["isolation"];
  },
): SandboxdConfigInput {
  return sandboxdStartConfig({
    ...input,
    root: SANDBOX_IMAGE.root,
    isolation: input.isolation ?? "none",
    opencode_bin: SANDBOX_IMAGE.opencode_bin,
  });
}

/**
 * sandboxd's `idle_suspend` for a provider whose disk outlives its runtime (local, docker): from
 * sandbox.suspend_after_minutes, undefined when suspension is off. Never for a runtime whose disk
 * dies with it: there the control plane's alarm checkpoints and suspends.
 */
export function idleSuspendConfig(config: AlpineConfig): { after_ms: number } | undefined {
  const ms = suspendAfterMs(config.sandbox);
  return ms === null ? undefined : { after_ms: Math.max(1000, ms) };
}
