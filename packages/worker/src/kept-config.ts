import { type AlpineConfig, AlpineError, ConfigSchema } from "@alpine/core";
import { openJson, sealJson } from "./crypto.ts";
import type { DoStateStore } from "./do-store.ts";
import type { Env } from "./env.ts";
import { offeredProfiles } from "./profiles.ts";

/**
 * The config a sandbox's operations run with: the one a mutating request
 * brought (kept sealed in the object's storage, for the alarm and the reads
 * that follow) or the one kept from earlier requests; the deployment's image
 * profiles and provider override the client's.
 */
export async function keptConfig(
  env: Env,
  store: DoStateStore,
  fromRequest?: Record<string, unknown>,
): Promise<AlpineConfig> {
  let raw: Record<string, unknown> = {};
  if (fromRequest) {
    raw = fromRequest;
    store.setKv("config", await sealJson(env.ALPINE_CONTROL_PLANE_TOKEN, "config", raw));
  } else {
    const sealed = store.getKv("config");
    if (sealed) {
      raw = await openJson<Record<string, unknown>>(env.ALPINE_CONTROL_PLANE_TOKEN, "config", sealed).catch(
        (err: unknown) => {
          // Sealed under an earlier token: the defaults serve until the next mutating request brings one.
          console.warn("alpine: the kept config cannot be opened; using defaults", { error: String(err) });
          return {};
        },
      );
    }
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new AlpineError("config_invalid", "the configuration sent to the control plane is invalid", {
      issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    });
  }
  const config = parsed.data;
  return {
    ...config,
    sandbox: { ...config.sandbox, provider: "cloudflare", image_profiles: offeredProfiles(env) },
  };
}
