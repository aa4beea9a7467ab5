import {
  AlpineError,
  PROVIDERS,
  type Provider,
  type ProviderKind,
  type ProviderKindRunIn,
} from "@alpine/core";
import type { Context } from "../context.ts";

/**
 * The providers whose sandboxes this process runs itself (`runs_in: "cli"` in
 * core's PROVIDERS), one line each, loaded on first use. The type makes a line
 * required for every such kind: a new provider is its file plus a line here.
 */
const REGISTRY: { [K in ProviderKindRunIn<"cli">]: (ctx: Context) => Promise<Provider> } = {
  local: async (ctx) => new (await import("./local.ts")).LocalProvider(ctx),
  docker: async (ctx) => new (await import("./docker.ts")).DockerProvider(ctx),
};

const runsHere = (kind: ProviderKind): kind is keyof typeof REGISTRY => PROVIDERS[kind].runs_in === "cli";

/**
 * A provider whose sandboxes the control plane runs (its own orchestrator,
 * packages/worker): commands reach those sandboxes through its HTTP API
 * (service.ts picks that), so every call here says where they live.
 */
function runByControlPlane(kind: ProviderKind): Provider {
  const fail = async (): Promise<never> => {
    throw new AlpineError(
      "provider_unavailable",
      `${kind} sandboxes are run by the control plane (sandbox.control_plane_url), not by this process`,
      { provider: kind },
    );
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
  return runsHere(kind) ? REGISTRY[kind](ctx) : runByControlPlane(kind);
}
