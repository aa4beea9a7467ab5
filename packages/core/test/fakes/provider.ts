import type {
  AlpineError,
  Provider,
  ProviderCapabilities,
  ProviderKind,
  RuntimeEndpoint,
  RuntimeHandle,
  RuntimeSpec,
  RuntimeStartIntent,
} from "../../src/index.ts";
import { FakeSandboxd } from "./sandboxd.ts";

type Op = "preflight" | "create" | "start" | "endpoint" | "stop" | "hasWorkspace" | "destroy" | "collect";

interface Runtime {
  running: boolean;
  sandboxd: FakeSandboxd;
}

/**
 * A provider whose runtimes are FakeSandboxd objects: start makes one reachable (endpoint
 * `fake://<runtime id>`), stop makes it unreachable and, unless the provider keeps workspaces,
 * drops its workspace. Records every call; `fail` makes an operation throw.
 */
export class FakeProvider implements Provider {
  readonly calls: { op: Op; id?: string; intent?: RuntimeStartIntent }[] = [];
  readonly runtimes = new Map<string, Runtime>();
  readonly fail = new Map<Op, Error>();
  /** Whether a stopped runtime keeps its workspace (local, docker: yes). */
  keepsWorkspace = true;
  /** Given to each new runtime's sandboxd: its setup fails with this after the checkout. */
  setupFailure: AlpineError | null = null;

  constructor(readonly kind: ProviderKind = "local") {}

  private call(op: Op, id?: string, intent?: RuntimeStartIntent): void {
    this.calls.push({ op, id, intent });
    const error = this.fail.get(op);
    if (error) throw error;
  }

  ops(): Op[] {
    return this.calls.map((c) => c.op);
  }

  async capabilities(): Promise<ProviderCapabilities> {
    return { kind: this.kind, isolation: "none", persistent_workspace: this.keepsWorkspace };
  }

  async preflight(_input: { image: string; image_profile: string }): Promise<void> {
    this.call("preflight");
  }

  async create(spec: RuntimeSpec): Promise<RuntimeHandle> {
    const id = `rt_${spec.sandbox_id}`;
    this.call("create", id);
    if (!this.runtimes.has(id)) {
      const sandboxd = new FakeSandboxd(spec.sandbox_id, spec.name);
      sandboxd.setupFailure = this.setupFailure;
      this.runtimes.set(id, { running: false, sandboxd });
    }
    return { id };
  }

  /** Every spec start() was given, in order (what a runtime is started with: auth, secrets). */
  readonly startedSpecs: RuntimeSpec[] = [];

  async start(handle: RuntimeHandle, spec: RuntimeSpec, intent?: RuntimeStartIntent): Promise<RuntimeHandle> {
    this.startedSpecs.push(spec);
    const id = handle.id as string;
    this.call("start", id, intent);
    this.runtime(id).running = true;
    return { id, started: true };
  }

  async endpoint(handle: RuntimeHandle): Promise<RuntimeEndpoint | null> {
    const id = handle.id as string;
    this.call("endpoint", id);
    return this.runtimes.get(id)?.running ? { url: `fake://${id}`, token: "t" } : null;
  }

  async stop(handle: RuntimeHandle): Promise<void> {
    const id = handle.id as string;
    this.call("stop", id);
    const runtime = this.runtimes.get(id);
    if (!runtime) return;
    runtime.running = false;
    if (!this.keepsWorkspace) runtime.sandboxd.workspace = null;
  }

  async hasWorkspace(handle: RuntimeHandle): Promise<boolean> {
    const id = handle.id as string;
    this.call("hasWorkspace", id);
    return this.keepsWorkspace && (this.runtimes.get(id)?.sandboxd.workspace ?? null) !== null;
  }

  async destroy(handle: RuntimeHandle): Promise<void> {
    const id = handle.id as string;
    this.call("destroy", id);
    this.runtimes.delete(id);
  }

  /** What logs() answers: the runtime's own log lines (a test writes sandboxd's). */
  logLines: string[] = [];

  async logs(): Promise<string[]> {
    return [...this.logLines];
  }

  async collect(): Promise<{ removed: string[]; started: string[] }> {
    this.call("collect");
    return { removed: [], started: [] };
  }

  runtime(id: string): Runtime {
    const runtime = this.runtimes.get(id);
    if (!runtime) throw new Error(`no runtime ${id}`);
    return runtime;
  }

  /** The sandboxd of a sandbox's runtime. */
  sandboxd(sandboxId: string): FakeSandboxd {
    return this.runtime(`rt_${sandboxId}`).sandboxd;
  }

  /** The runtime's process died (the machine rebooted…): nothing answers, the workspace stays. */
  crash(sandboxId: string): void {
    this.runtime(`rt_${sandboxId}`).running = false;
  }
}
