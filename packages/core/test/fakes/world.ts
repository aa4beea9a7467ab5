import type { FaultStep } from "../../src/faults.ts";
import {
  type AlpineConfig,
  type CheckpointExporter,
  type CheckpointManifest,
  DEFAULT_CONFIG,
  type GitCredentials,
  Orchestrator,
  type OrchestratorDeps,
  type ProviderKind,
  type PullRequestOpener,
  type SandboxRecord,
  type WorkExport,
} from "../../src/index.ts";
import { fakeSha } from "./bytes.ts";
import { MemoryCheckpointStore } from "./checkpoint-store.ts";
import { FakeClock, FakeHost, RecordingLogger, SequentialIds } from "./clock.ts";
import { FakeProvider } from "./provider.ts";
import { MemoryStateStore } from "./state-store.ts";

export class FakePullRequests implements PullRequestOpener {
  readonly opened: Parameters<PullRequestOpener["open"]>[0][] = [];
  fail: Error | null = null;
  async open(opts: Parameters<PullRequestOpener["open"]>[0]): Promise<{ url: string }> {
    if (this.fail) throw this.fail;
    this.opened.push(opts);
    return { url: `https://github.test/pr/${this.opened.length}` };
  }
}

/** Exports from a stored checkpoint: what the host or worker exporter would push. */
export class FakeCheckpointExporter implements CheckpointExporter {
  readonly exported: { manifest: CheckpointManifest; opts: Parameters<CheckpointExporter["export"]>[1] }[] =
    [];
  async export(
    manifest: CheckpointManifest,
    opts: Parameters<CheckpointExporter["export"]>[1],
  ): Promise<WorkExport> {
    this.exported.push({ manifest, opts });
    return {
      branch: opts.branch,
      commit: fakeSha(`export:${manifest.tree_hash}`),
      base_commit: manifest.base_commit,
      tree_hash: manifest.tree_hash,
      files_changed: 1,
      insertions: 1,
      deletions: 0,
      pushed: opts.push,
      remote: opts.push ? opts.repo : null,
      ...(opts.patch ? { patch: "diff --git a/x b/x\n" } : {}),
    };
  }
}

export interface World {
  deps: OrchestratorDeps;
  orchestrator: Orchestrator;
  store: MemoryStateStore;
  clock: FakeClock;
  host: FakeHost;
  provider: FakeProvider;
  checkpoints: MemoryCheckpointStore;
  exporter: FakeCheckpointExporter;
  pullRequests: FakePullRequests;
  logger: RecordingLogger;
  credentials: GitCredentials | null;
  /** Fault steps reached, in order. */
  steps: FaultStep[];
  /** The record as stored now. */
  record(name?: string): SandboxRecord;
}

/** An orchestrator over in-memory fakes of every port; `config` patches the defaults by section. */
export function world(
  opts: { config?: { [K in keyof AlpineConfig]?: Partial<AlpineConfig[K]> }; requiresAuth?: boolean } = {},
): World {
  const config = structuredClone(DEFAULT_CONFIG) as AlpineConfig;
  for (const [section, patch] of Object.entries(opts.config ?? {})) {
    Object.assign(config[section as keyof AlpineConfig], patch);
  }
  const store = new MemoryStateStore();
  const clock = new FakeClock();
  const host = new FakeHost();
  const provider = new FakeProvider("local");
  const others = new Map<ProviderKind, FakeProvider>([["local", provider]]);
  const checkpoints = new MemoryCheckpointStore();
  const exporter = new FakeCheckpointExporter();
  const pullRequests = new FakePullRequests();
  const logger = new RecordingLogger();
  const steps: FaultStep[] = [];
  const w: World = {
    store,
    clock,
    host,
    provider,
    checkpoints,
    exporter,
    pullRequests,
    logger,
    steps,
    credentials: { username: "x-access-token", password: "secret" },
    deps: undefined as unknown as OrchestratorDeps,
    orchestrator: undefined as unknown as Orchestrator,
    record(name = "box") {
      const record = store.records.get(name);
      if (!record) throw new Error(`no record ${name}`);
      return structuredClone(record);
    },
  };
  w.deps = {
    store,
    clock,
    ids: new SequentialIds(),
    host,
    config,
    provider(kind) {
      const known = others.get(kind);
      if (known) return known;
      const made = new FakeProvider(kind);
      others.set(kind, made);
      return made;
    },
    connect(endpoint) {
      const id = endpoint.url.replace("fake://", "");
      return provider.runtime(id).sandboxd;
    },
    credentialsFor: async () => w.credentials,
    authEntries: async () => ({ openai: { type: "api", key: "k" } }),
    checkpoints,
    checkpointExporter: exporter,
    pullRequests,
    gitAuthor: async () => ({ name: "Dev", email: "dev@example.com" }),
    requiresAuth: () => opts.requiresAuth ?? true,
    faults: { reached: (step) => void steps.push(step) },
    log: logger,
  };
  w.orchestrator = new Orchestrator(w.deps);
  return w;
}

export const REPO = "https://github.test/acme/app.git";

/** Launches `box` (a new sandbox, running, clean workspace). */
export async function launched(
  w: World,
  name = "box",
  extra: { task?: string } = {},
): Promise<SandboxRecord> {
  const result = await w.orchestrator.launch({ name, repo: REPO, ...extra });
  return result.record;
}
