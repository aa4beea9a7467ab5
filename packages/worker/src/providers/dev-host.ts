import {
  AlpineError,
  type ProviderCapabilities,
  type RuntimeEndpoint,
  type RuntimeHandle,
  type RuntimeSpec,
} from "@alpine/core";
import type { ControlPlaneProvider } from "./types.ts";

/**
 * `alpine cloud dev`: workerd cannot start processes, so the Durable Object
 * asks a small authenticated Node "container host" on 127.0.0.1 (run by
 * `alpine cloud dev`, reusing the local provider's code) to start and stop
 * sandboxd processes; it then talks to each sandboxd on 127.0.0.1 directly,
 * as it would to a Container's port.
 */
export class DevHostProvider implements ControlPlaneProvider {
  readonly kind = "cloudflare" as const;

  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  private async call<T>(op: string, body: unknown, timeoutMs = 120_000): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl.replace(/\/+$/, "")}/v1/${op}`, {
        method: "POST",
        headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new AlpineError(
        "provider_unavailable",
        `the dev container host at ${this.baseUrl} does not answer: ${(err as Error).message}`,
        { op },
      );
    }
    const text = await res.text();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (!res.ok) throw AlpineError.fromJSON(value, "provider_unavailable");
    return value as T;
  }

  async capabilities(): Promise<ProviderCapabilities> {
    return { kind: "cloudflare", isolation: "dev-host", persistent_workspace: true };
  }

  async create(spec: RuntimeSpec): Promise<RuntimeHandle> {
    return (await this.call<{ handle: RuntimeHandle }>("create", { spec: withoutNotify(spec) })).handle;
  }

  async start(handle: RuntimeHandle, spec: RuntimeSpec): Promise<RuntimeHandle> {
    return (await this.call<{ handle: RuntimeHandle }>("start", { handle, spec: withoutNotify(spec) }))
      .handle;
  }

  async endpoint(handle: RuntimeHandle): Promise<RuntimeEndpoint | null> {
    return (await this.call<{ endpoint: RuntimeEndpoint | null }>("endpoint", { handle }, 15_000)).endpoint;
  }

  async stop(handle: RuntimeHandle): Promise<void> {
    await this.call("stop", { handle });
  }

  async hasWorkspace(handle: RuntimeHandle): Promise<boolean> {
    return (await this.call<{ value: boolean }>("has-workspace", { handle }, 15_000)).value;
  }

  async destroy(handle: RuntimeHandle): Promise<void> {
    await this.call("destroy", { handle });
  }

  async logs(handle: RuntimeHandle, opts: { tail?: number } = {}): Promise<string[]> {
    return (await this.call<{ lines: string[] }>("logs", { handle, tail: opts.tail ?? 200 }, 15_000)).lines;
  }

  fetchFor(): typeof fetch {
    return (input, init) => fetch(input, init);
  }
}

/**
 * On the control plane the sandbox object sends the notifications (notify-object.ts), as it does
 * with a real Container, whose sandboxd gets no `notify`: the host's sandboxd must not send them
 * too (twice, and without the webhook secrets, which only the object holds).
 */
function withoutNotify(spec: RuntimeSpec): RuntimeSpec {
  return {
    ...spec,
    config: { ...spec.config, notify: { ...spec.config.notify, webhooks: [], desktop: false } },
  };
}
