import { hostname } from "node:os";
import { join } from "node:path";
import type {
  AlpineConfig,
  CheckpointExporter,
  CheckpointStore,
  Clock,
  HostIdentity,
  Ids,
  Logger,
  Orchestrator,
  Provider,
  ProviderKind,
  PullRequestOpener,
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

/** Every method of Provider but `kind` (all async; the optional ones included). */
const PROVIDER_METHODS = [
  "capabilities",
  "preflight",
  "create",
  "start",
  "endpoint",
  "stop",
  "hasWorkspace",
  "destroy",
  "logs",
  "collect",
] as const;

function once<T>(load: () => Promise<T>): () => Promise<T> {
  let loaded: Promise<T> | undefined;
  return () => {
    loaded ??= load();
    // A failed load (a module that cannot be read) is tried again next time.
    loaded.catch(() => {
      loaded = undefined;
    });
    return loaded;
  };
}

/**
 * An object whose async `methods` load the real one on first call and delegate to it; an
 * optional method the real one lacks resolves to undefined (as `obj.method?.()` would).
 */
function lazy<T extends object>(load: () => Promise<T>, methods: readonly string[]): T {
  const out: Record<string, unknown> = {};
  for (const name of methods) {
    out[name] = async (...args: unknown[]) => {
      const real = (await load()) as Record<string, unknown>;
      const fn = real[name];
      return typeof fn === "function" ? fn.apply(real, args) : undefined;
    };
  }
  return out as T;
}

/**
 * true only in the CLI's test bundle (esbuild define, test/reliability/harness.ts, buildClis); the
 * production build defines it false, so the fault hook below is compiled out of dist/alpine.js.
 */
declare const __ALPINE_FAULTS__: boolean | undefined;

const cause = (details?: Record<string, unknown>) => (details?.error ? ` (${String(details.error)})` : "");
const stderrLogger: Logger = {
  debug: (message, details) => process.stderr.write(`debug: ${message}${cause(details)}\n`),
  warn: (message, details) => process.stderr.write(`warning: ${message}${cause(details)}\n`),
};

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
        // Only what every command needs is loaded here; the rest on first use (a launch
        // never exports, so it never loads git-host, GitHub or the docker provider).
        const [{ Orchestrator, SandboxdClient, PROVIDER_KINDS }, credentials, { nodeFetch }, s] =
          await Promise.all([
            import("@alpine/core"),
            import("./credentials.ts"),
            import("./node-fetch.ts"),
            ctx.store(),
          ]);
        const loadCheckpoints = once(async () => {
          const { LocalCheckpointStore } = await import("./store/checkpoint-store.ts");
          return new LocalCheckpointStore(join(home, "checkpoints"));
        });
        const checkpoints = lazy<CheckpointStore>(loadCheckpoints, [
          "putArtifact",
          "putManifest",
          "getManifest",
          "getArtifact",
          "verify",
          "list",
          "delete",
          "prune",
        ]);
        const checkpointExporter = lazy<CheckpointExporter>(
          once(async () => {
            const { HostCheckpointExporter } = await import("./checkpoint-exporter.ts");
            return new HostCheckpointExporter(await loadCheckpoints());
          }),
          ["export"],
        );
        const config = ctx.config;
        const pullRequests = lazy<PullRequestOpener>(
          once(async () => new (await import("./github.ts")).GithubPullRequests(config)),
          ["open"],
        );
        // Each provider is loaded on its first call (a launch never loads the docker provider).
        const resolved = new Map<ProviderKind, Provider>();
        for (const kind of PROVIDER_KINDS) {
          const methods = lazy<Omit<Provider, "kind">>(
            once(() => ctx.provider(kind)),
            PROVIDER_METHODS,
          );
          resolved.set(kind, { kind, ...methods });
        }
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
          secretsFor: async (repo) => (await import("./secrets-store.ts")).sandboxSecrets(home, repo),
          checkpoints,
          checkpointExporter,
          pullRequests,
          gitAuthor: async () => (await import("./git-host.ts")).hostGitAuthor(),
          requiresAuth: (repo) => credentials.requiresAuth(repo, config),
          faults,
          // With -v, the best-effort steps the orchestrator let fail are told on stderr.
          log: globals.verbose ? stderrLogger : undefined,
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
