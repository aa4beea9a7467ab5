import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";

/**
 * A double of `ctx.container` for what local workerd cannot do (its containers are disabled in
 * these tests): a container found running by a restarted object, a platform with no instance to
 * give, a container that dies while booting. It behaves as workerd's container client does:
 * `start()` is synchronous and may throw; `running` flips at once; `monitor()` settles when the
 * container stops (rejecting with the platform's message or the exit code); the TCP port refuses
 * connections ("the container is not listening") until the service is up.
 */

export const NO_INSTANCE =
  "There is no container instance that can be provided to this Durable Object, try again later";

/** What the next start does. */
export type Boot =
  /** start() throws the platform's capacity refusal. */
  | "refused"
  /** starts, then the platform takes it back: stops with monitor() rejecting NO_INSTANCE. */
  | "no-instance"
  /** starts, then the process exits with code 1 before it answers. */
  | "crash"
  /** starts and answers its health path. */
  | "ok";

export class ContainerDouble {
  running = false;
  readonly timeouts: number[] = [];
  readonly starts: ContainerStartupOptions[] = [];
  healthProbes = 0;
  private healthy = false;
  private stop: ((error: unknown) => void) | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly boots: Boot[] = []) {}

  /** A container left running by an earlier instance of its object. */
  static alreadyRunning(): ContainerDouble {
    const c = new ContainerDouble();
    c.begin();
    c.healthy = true;
    return c;
  }

  private begin(): void {
    this.running = true;
    this.exited = new Promise<void>((resolve, reject) => {
      this.stop = (error) => {
        this.running = false;
        this.healthy = false;
        if (error) reject(error);
        else resolve();
      };
    });
    // Observed by whoever calls monitor(); never an unhandled rejection here.
    this.exited.catch(() => {});
  }

  start(options?: ContainerStartupOptions): void {
    if (this.running) throw new Error("start() cannot be called on a container that is already running.");
    this.starts.push(options ?? { enableInternet: false });
    const boot = this.boots.shift() ?? "ok";
    if (boot === "refused") throw new Error(NO_INSTANCE);
    this.begin();
    if (boot === "ok") this.healthy = true;
    if (boot === "no-instance") setTimeout(() => this.stop?.(new Error(NO_INSTANCE)), 20);
    if (boot === "crash") {
      setTimeout(() => this.stop?.(new Error("container exited with unexpected exit code: 1")), 20);
    }
  }

  monitor(): Promise<void> {
    return this.exited;
  }

  async destroy(): Promise<void> {
    this.stop?.(null);
  }

  signal(_signo: number): void {
    this.stop?.(null);
  }

  async setInactivityTimeout(durationMs: number | bigint): Promise<void> {
    if (!this.running) throw new Error("the container is not running");
    this.timeouts.push(Number(durationMs));
  }

  getTcpPort(_port: number): Fetcher {
    const fetchPort = async (input: RequestInfo | URL, _init?: RequestInit) => {
      const path = new URL(input instanceof Request ? input.url : String(input)).pathname;
      if (path === "/healthz") this.healthProbes++;
      if (!this.running || !this.healthy) throw new Error("the container is not listening");
      return Response.json({ ok: true, path });
    };
    return { fetch: fetchPort } as unknown as Fetcher;
  }
}

/**
 * Runs `fn` with a real DurableObjectState of a container object whose `container` is `double`
 * (DurableObject's constructor accepts only a real state): `new SandboxContainer(state, env)` in
 * `fn` is that object coming back, as after an eviction or a deploy.
 */
export async function withContainerDouble<T>(
  name: string,
  double: ContainerDouble,
  fn: (state: DurableObjectState) => Promise<T>,
): Promise<T> {
  const ns = env.SANDBOX_CONTAINER as DurableObjectNamespace<
    import("../src/container-object.ts").SandboxContainer
  >;
  const stub = ns.getByName(name);
  return runInDurableObject(stub, async (_instance, state) => {
    Object.defineProperty(state, "container", { value: double, configurable: true });
    try {
      return await fn(state);
    } finally {
      Reflect.deleteProperty(state, "container");
    }
  });
}
