import type { ProviderCapabilities, RuntimeEndpoint, RuntimeHandle, RuntimeSpec } from "@alpine/core";
import {
  AlpineError,
  declaredCapabilities,
  imageSandboxdConfig,
  requireHandle,
  SANDBOX_IMAGE,
  SandboxdClient,
} from "@alpine/core";
import type { SandboxContainer } from "../container-object.ts";
import { SANDBOXD_PORT } from "../container-object.ts";
import type { StartOutcome } from "../container-start.ts";
import { randomId, sandboxToken } from "../crypto.ts";
import type { Env } from "../env.ts";
import type { ControlPlaneProvider } from "./types.ts";

interface ContainerHandle {
  binding: string;
  sandbox_id: string;
  /** Changes with every runtime, so a token of an old runtime does not open a new one. */
  nonce: string;
}

const INTERNAL_HOST = ".container.alpine.internal";

const asHandle = (handle: RuntimeHandle) =>
  requireHandle<ContainerHandle>("cloudflare", handle, ["binding", "sandbox_id", "nonce"]);

/**
 * Production: each runtime is a Cloudflare Container, owned by a
 * SandboxContainer Durable Object named after the sandbox id, in the binding
 * of the sandbox's image profile. Its disk does not outlive it, so a new
 * runtime always restores the latest checkpoint (or clones).
 */
export class ContainerProvider implements ControlPlaneProvider {
  readonly kind = "cloudflare" as const;
  /** Hostnames handed out by endpoint() → the container they stand for. */
  private readonly routes = new Map<string, { binding: string; sandbox_id: string }>();

  constructor(
    private readonly env: Env,
    /** image profile → binding name */
    private readonly profiles: Record<string, string>,
    private readonly profileOf: (sandboxId: string) => string,
    private readonly inactivityMs: number,
  ) {}

  private namespace(binding: string): DurableObjectNamespace<SandboxContainer> {
    const ns = this.env[binding] as DurableObjectNamespace<SandboxContainer> | undefined;
    if (!ns || typeof (ns as { getByName?: unknown }).getByName !== "function") {
      throw new AlpineError("provider_unavailable", `container binding ${binding} is not configured`, {
        binding,
      });
    }
    return ns;
  }

  private stub(h: ContainerHandle) {
    return this.namespace(h.binding).getByName(h.sandbox_id);
  }

  async capabilities(): Promise<ProviderCapabilities> {
    return declaredCapabilities("cloudflare");
  }

  async create(spec: RuntimeSpec): Promise<RuntimeHandle> {
    const profile = this.profileOf(spec.sandbox_id);
    const binding = this.profiles[profile];
    if (!binding) {
      throw new AlpineError("image_profile_unknown", `image profile '${profile}' has no container here`, {
        image_profile: profile,
        known: Object.keys(this.profiles),
      });
    }
    this.namespace(binding);
    return { binding, sandbox_id: spec.sandbox_id, nonce: randomId() } satisfies ContainerHandle;
  }

  async start(handle: RuntimeHandle, spec: RuntimeSpec): Promise<RuntimeHandle> {
    const h = asHandle(handle);
    const token = await sandboxToken(this.env.ALPINE_CONTROL_PLANE_TOKEN, h.sandbox_id, h.nonce);
    const config = imageSandboxdConfig({
      sandbox: spec,
      token,
      listen: { host: "0.0.0.0", port: SANDBOXD_PORT },
      auth: spec.auth,
      secrets: spec.secrets,
      // prepared environments: the container's own store, staged from and copied to R2 (prepared-store.ts).
      preparedDir: SANDBOX_IMAGE.prepared,
      // The platform keeps what the container prints (dashboard, `wrangler tail`) after its disk is
      // gone; a rollout's SIGTERM leaves 15 minutes, of which sandboxd holds its exit checkpoint 12
      // for the control plane to copy (docs/cloudflare.md, "Rollouts").
      extra: { log_stderr: true, exit_checkpoint: { hold_ms: 12 * 60_000 } },
    });
    let outcome: StartOutcome;
    try {
      outcome = await this.stub(h).startSandbox(JSON.stringify(config), this.inactivityMs);
    } catch (err) {
      throw new AlpineError("agent_start_failed", `the container did not start: ${(err as Error).message}`, {
        binding: h.binding,
      });
    }
    if (!outcome.ok) {
      const details = {
        binding: h.binding,
        cause: outcome.kind,
        attempts: outcome.attempts,
        ...(outcome.exit_code === null ? {} : { exit_code: outcome.exit_code }),
      };
      // No instance after retrying allocation is the platform's capacity, not alpine's failure: its own reason.
      if (outcome.kind === "capacity") throw new AlpineError("container_capacity", outcome.message, details);
      throw new AlpineError("agent_start_failed", outcome.message, details);
    }
    return { ...h };
  }

  async endpoint(handle: RuntimeHandle): Promise<RuntimeEndpoint | null> {
    const h = asHandle(handle);
    if (!(await this.stub(h).isRunning())) return null;
    // The URL only names the runtime for fetchFor (which sends it through the container's port).
    const label = `rt${this.routes.size + 1}`;
    const existing = [...this.routes.entries()].find(
      ([, r]) => r.sandbox_id === h.sandbox_id && r.binding === h.binding,
    );
    const host = existing?.[0] ?? `${label}${INTERNAL_HOST}`;
    this.routes.set(host, { binding: h.binding, sandbox_id: h.sandbox_id });
    return {
      url: `http://${host}:${SANDBOXD_PORT}`,
      token: await sandboxToken(this.env.ALPINE_CONTROL_PLANE_TOKEN, h.sandbox_id, h.nonce),
    };
  }

  /**
   * Stopping on purpose asks sandboxd to shut down (POST /v1/shutdown) before the container's
   * SIGTERM: sandboxd treats a SIGTERM as the platform's (a rollout) and would write and hold an
   * exit checkpoint that nobody collects, cut short by stopSandbox's grace period.
   */
  async stop(handle: RuntimeHandle): Promise<void> {
    try {
      const endpoint = await this.endpoint(handle);
      if (endpoint) {
        await new SandboxdClient({
          baseUrl: endpoint.url,
          token: endpoint.token,
          fetch: this.fetchFor(endpoint.url),
          timeoutMs: 5000,
        }).shutdown();
      }
    } catch {
      // Not answering (or already gone): stopSandbox's signal and destroy end it anyway.
    }
    await this.stub(asHandle(handle)).stopSandbox();
  }

  async hasWorkspace(): Promise<boolean> {
    // A container's disk is gone once it stops: a new runtime restores or clones.
    return false;
  }

  async destroy(handle: RuntimeHandle): Promise<void> {
    await this.stop(handle);
  }

  /** The tail of sandboxd's log (its and OpenCode's lines), from sandboxd's `GET /v1/logs`. */
  async logs(handle: RuntimeHandle, opts: { tail?: number } = {}): Promise<string[]> {
    const endpoint = await this.endpoint(handle);
    if (!endpoint) return [];
    const client = new SandboxdClient({
      baseUrl: endpoint.url,
      token: endpoint.token,
      fetch: this.fetchFor(endpoint.url),
    });
    return client.logs(opts.tail ?? 200);
  }

  /** Keeps a busy sandbox's container alive (called by the SandboxObject's alarm). */
  async renew(handle: RuntimeHandle): Promise<boolean> {
    return this.stub(asHandle(handle)).renew(this.inactivityMs);
  }

  fetchFor(url: string): typeof fetch {
    const route = this.routes.get(new URL(url).hostname);
    if (!route) {
      return async () => {
        throw new AlpineError("sandbox_unavailable", `no container runtime is known for ${url}`);
      };
    }
    const stub = this.namespace(route.binding).getByName(route.sandbox_id);
    return async (input, init) => stub.fetch(new Request(input as RequestInfo, init));
  }
}
