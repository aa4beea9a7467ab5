import { AlpineError } from "./errors.ts";
import type { ProviderCapabilities } from "./ports.ts";

/**
 * What a provider kind is, known without loading it: where its sandboxes are
 * run from and what they can and cannot do. One entry per kind; the kind
 * enums of the zod schemas (sandbox records, `sandbox.provider`, `--provider`)
 * are derived from this list, so a new kind is one line here (plus its
 * implementation and one line in the registry of the side that runs it:
 * packages/cli/src/providers/index.ts or the control plane's).
 */
export interface ProviderDescriptor {
  /**
   * Who runs the lifecycle of its sandboxes: the CLI's own orchestrator, in
   * the CLI's process, or the control plane (a Durable Object per sandbox,
   * packages/worker) that the CLI talks to over HTTP.
   */
  runs_in: "cli" | "control_plane";
  /** What stands between the agent and the machine it runs on. */
  isolation: "bubblewrap or none" | "container";
  /**
   * sandboxd runs on the launching machine, so a repository may be given as a
   * path there; otherwise why it cannot, and what to pass instead.
   */
  host_paths: { readable: true } | { readable: false; because: string; instead: string };
  /** The workspace outlives a stopped runtime (a restart resumes it instead of restoring a checkpoint). */
  persistent_workspace: boolean;
  /** Runs the sandbox image of an image profile (`alpine image build`), rather than this machine's binaries. */
  needs_image: boolean;
}

export const PROVIDERS = {
  local: {
    runs_in: "cli",
    isolation: "bubblewrap or none",
    host_paths: { readable: true },
    persistent_workspace: true,
    needs_image: false,
  },
  docker: {
    runs_in: "cli",
    isolation: "container",
    host_paths: {
      readable: false,
      because: "clones inside its container",
      instead: "pass the repository's URL, or use --provider local",
    },
    persistent_workspace: true,
    needs_image: true,
  },
  cloudflare: {
    runs_in: "control_plane",
    isolation: "container",
    host_paths: { readable: false, because: "clones over the network", instead: "pass the repository's URL" },
    persistent_workspace: false,
    needs_image: true,
  },
} as const satisfies Record<string, ProviderDescriptor>;

type Kind = keyof typeof PROVIDERS;

/** Every provider kind. */
export const PROVIDER_KINDS = Object.keys(PROVIDERS) as [Kind, ...Kind[]];

/** The kinds whose sandboxes the given side runs. */
export type ProviderKindRunIn<Where extends ProviderDescriptor["runs_in"]> = {
  [K in Kind]: (typeof PROVIDERS)[K]["runs_in"] extends Where ? K : never;
}[Kind];

export function providerDescriptor(kind: Kind): ProviderDescriptor {
  return PROVIDERS[kind];
}

/** The capabilities a provider of this kind declares whatever the machine (local's isolation is probed). */
export function declaredCapabilities(kind: Kind): ProviderCapabilities {
  const { isolation, persistent_workspace } = providerDescriptor(kind);
  return { kind, isolation, persistent_workspace };
}

/**
 * Refuses, before anything connects, a repository given as a path on this
 * machine for a provider whose sandboxd cannot read it (`repo_resolution_failed`).
 */
export function assertRepoReachable(kind: Kind, repo: string | undefined): void {
  const paths = providerDescriptor(kind).host_paths;
  if (paths.readable || !repo?.startsWith("/")) return;
  throw new AlpineError(
    "repo_resolution_failed",
    `a ${kind} sandbox ${paths.because} and cannot read ${repo} on this machine; ${paths.instead}`,
    { repo },
  );
}
