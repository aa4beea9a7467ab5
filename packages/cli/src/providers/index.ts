import { AlpineError, type Provider, type ProviderKind } from "@alpine/core";
import type { Context } from "../context.ts";

/** A provider this build cannot run yet: every call says so with a clear reason. */
function unavailable(kind: ProviderKind, why: string): Provider {
  const fail = async (): Promise<never> => {
    throw new AlpineError("provider_unavailable", `the ${kind} provider is not available: ${why}`, {
      provider: kind,
    });
  };
  return {
    kind,
    capabilities: fail,
    create: fail,
    start: fail,
    endpoint: fail,
    stop: fail,
    destroy: fail,
    hasWorkspace: async () => false,
    logs: async () => [],
  };
}

export async function createProvider(kind: ProviderKind, ctx: Context): Promise<Provider> {
  switch (kind) {
    case "local": {
      const { LocalProvider } = await import("./local.ts");
      return new LocalProvider(ctx);
    }
    case "docker": {
      const { DockerProvider } = await import("./docker.ts");
      return new DockerProvider(ctx);
    }
    case "cloudflare":
      return unavailable(kind, "the cloudflare control plane is not built yet");
  }
}
