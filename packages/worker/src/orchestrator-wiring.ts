import {
  type AlpineConfig,
  type CheckpointExporter,
  type GitCredentials,
  type HostIdentity,
  type Ids,
  Orchestrator,
  type OrchestratorDeps,
  SandboxdClient,
  workOfItem,
} from "@alpine/core";
import { RuntimeCheckpointExporter } from "./checkpoint-exporter.ts";
import type { DoStateStore } from "./do-store.ts";
import type { Env } from "./env.ts";
import { FetchPullRequests, requiresAuth } from "./github.ts";
import type { ControlPlaneProvider } from "./providers/types.ts";
import type { R2CheckpointStore } from "./r2-store.ts";

/** Per-request facts the orchestrator may need (from the CLI's machine): never stored. */
export interface RequestScope {
  credentials: GitCredentials | null;
  githubToken: string | null;
  author: { name: string; email: string } | null;
}

export const NO_SCOPE: RequestScope = { credentials: null, githubToken: null, author: null };

/** The request fields that make up its scope (launch and export carry some). */
export function scopeOf(input: {
  credentials?: GitCredentials | null;
  github_token?: string | null;
  author?: { name: string; email: string };
}): RequestScope {
  return {
    credentials: input.credentials ?? null,
    githubToken: input.github_token ?? null,
    author: input.author ?? null,
  };
}

export interface SandboxWiring {
  env: Env;
  store: DoStateStore;
  provider: ControlPlaneProvider;
  checkpoints: R2CheckpointStore;
  /** This object instance as a lease holder: a restarted object owns none of the old leases. */
  host: HostIdentity;
}

const ids: Ids = {
  sandboxId: () => `sbx_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`,
  operationId: () => `op_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`,
};

const clock: OrchestratorDeps["clock"] = {
  now: () => Date.now(),
  every(ms: number, fn: () => void) {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
  sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
};

/**
 * core's Orchestrator on the Durable Object's ports: its SQLite storage as the
 * StateStore, R2 as the CheckpointStore, a Container (or the dev host) as the
 * Provider, model credentials and repo secrets from the registry, git credentials and author
 * from this request only.
 */
export function sandboxOrchestrator(
  wiring: SandboxWiring,
  config: AlpineConfig,
  scope: RequestScope = NO_SCOPE,
): Orchestrator {
  const { env, provider, checkpoints } = wiring;
  const registry = env.REGISTRY.getByName("registry");
  const connect = (endpoint: { url: string; token: string }) =>
    new SandboxdClient({
      baseUrl: endpoint.url,
      token: endpoint.token,
      fetch: provider.fetchFor(endpoint.url),
    });
  const checkpointExporter: CheckpointExporter = new RuntimeCheckpointExporter(
    provider,
    checkpoints,
    connect,
    config,
  );
  return new Orchestrator({
    store: wiring.store,
    clock,
    ids,
    host: wiring.host,
    config,
    provider: () => provider,
    connect,
    credentialsFor: async () => scope.credentials,
    authEntries: async () => {
      const all = await registry.getAuth();
      return Object.fromEntries(
        config.opencode.auth_providers.filter((p) => Object.hasOwn(all, p)).map((p) => [p, all[p]]),
      );
    },
    // Overlap warnings (status, export) compare with every sandbox: this object stores only its own record.
    peers: async () => (await registry.list()).map(workOfItem),
    // repo secrets (`alpine secrets`): opened by the registry at each launch and resume, never stored here.
    secretsFor: (repo: string) => registry.secretsFor(repo),
    checkpoints,
    checkpointExporter,
    pullRequests: new FetchPullRequests(config, scope.githubToken),
    gitAuthor: async () => scope.author ?? { name: "alpine", email: "alpine@localhost" },
    requiresAuth: (repo: string) => requiresAuth(repo, config),
  });
}
