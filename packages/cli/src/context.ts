import { hostname } from "node:os";
import { join } from "node:path";
import type {
  AlpineConfig,
  Clock,
  HostIdentity,
  Ids,
  Orchestrator,
  Provider,
  ProviderKind,
} from "@alpine/core";
import type { LoadedConfig } from "./config-loader.ts";
import { alpineHome, stateDbPath } from "./paths.ts";
import type { Globals } from "./run.ts";
import type { SqliteStateStore } from "./store/sqlite-store.ts";

export const nodeClock: Clock = {
  now: () => Date.now(),
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export const nodeIds: Ids = {
  sandboxId: () => `sbx_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`,
  operationId: () => `op_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`,
};

export const thisHost: HostIdentity = {
  host: hostname(),
  pid: process.pid,
  isProcessAlive(pid: number) {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      // EPERM: it exists but belongs to someone else.
      return (err as NodeJS.ErrnoException).code === "EPERM";
    }
  },
};

/**
 * true only in the CLI's test bundle (esbuild define, test/reliability/harness.ts, buildClis); the
 * production build defines it false, so the fault hook below is compiled out of dist/alpine.js.
 */
declare const __ALPINE_FAULTS__: boolean | undefined;

/** What every command can use; each piece is built on first use so fast commands stay fast. */
export interface Context {
  globals: Globals;
  home: string;
  readonly loaded: LoadedConfig;
  readonly config: AlpineConfig;
  store(): Promise<SqliteStateStore>;
  orchestrator(): Promise<Orchestrator>;
  provider(kind: ProviderKind): Promise<Provider>;
  close(): void;
}

/**
 * Builds the context. Configuration (YAML + zod) is loaded here unless the
 * command does without it (`list` reads only the store, and must start fast).
 */
export async function createContext(globals: Globals, opts: { config?: boolean } = {}): Promise<Context> {
  let loaded: LoadedConfig | undefined;
  let store: SqliteStateStore | undefined;
  let orchestrator: Orchestrator | undefined;
  const providers = new Map<ProviderKind, Provider>();
  const home = alpineHome();

  const ctx: Context = {
    globals,
    home,
    get loaded() {
      if (!loaded) throw new Error("this command was declared without configuration");
      return loaded;
    },
    get config() {
      return ctx.loaded.config;
    },
    async store() {
      if (!store) {
        const { SqliteStateStore } = await import("./store/sqlite-store.ts");
        store = new SqliteStateStore(stateDbPath(home));
      }
      return store;
    },
    async provider(kind) {
      let provider = providers.get(kind);
      if (!provider) {
        const { createProvider } = await import("./providers/index.ts");
        provider = await createProvider(kind, ctx);
        providers.set(kind, provider);
      }
      return provider;
    },
    async orchestrator() {
      if (!orchestrator) {
        const [
          { Orchestrator, SandboxdClient },
          credentials,
          { LocalCheckpointStore },
          { HostCheckpointExporter },
          { GithubPullRequests },
          { hostGitAuthor },
          { nodeFetch },
        ] = await Promise.all([
          import("@alpine/core"),
          import("./credentials.ts"),
          import("./store/checkpoint-store.ts"),
          import("./checkpoint-exporter.ts"),
          import("./github.ts"),
          import("./git-host.ts"),
          import("./node-fetch.ts"),
        ]);
        const checkpoints = new LocalCheckpointStore(join(home, "checkpoints"));
        const config = ctx.config;
        const resolved = new Map<ProviderKind, Provider>();
        for (const kind of ["local", "docker", "cloudflare"] as const)
          resolved.set(kind, await ctx.provider(kind));
        const s = await ctx.store();
        const faults =
          typeof __ALPINE_FAULTS__ !== "undefined" && __ALPINE_FAULTS__
            ? (await import("./faults.ts")).faultPointsFromEnv()
            : undefined;
        orchestrator = new Orchestrator({
          store: s,
          clock: nodeClock,
          ids: nodeIds,
          host: thisHost,
          config,
          provider(kind) {
            const p = resolved.get(kind);
            if (!p) throw new Error(`provider ${kind} was not loaded`);
            return p;
          },
          connect: (endpoint, opts) =>
            new SandboxdClient({
              baseUrl: endpoint.url,
              token: endpoint.token,
              timeoutMs: opts?.timeoutMs,
              fetch: nodeFetch,
            }),
          credentialsFor: (repo) => credentials.hostCredentialsFor(repo, config),
          authEntries: () => credentials.sandboxAuthEntries(home, config),
          checkpoints,
          checkpointExporter: new HostCheckpointExporter(checkpoints),
          pullRequests: new GithubPullRequests(config),
          gitAuthor: hostGitAuthor,
          requiresAuth: (repo) => credentials.requiresAuth(repo, config),
          faults,
        });
      }
      return orchestrator;
    },
    close() {
      store?.close();
    },
  };
  if (opts.config !== false) {
    const { loadConfig } = await import("./config-loader.ts");
    loaded = loadConfig({ configPath: globals.config });
  }
  return ctx;
}
