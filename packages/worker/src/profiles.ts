import type { Env } from "./env.ts";

/** The deployment's image profiles: profile → container binding (or "dev-host" under `alpine cloud dev`). */
export function profilesOf(env: Env): Record<string, string> {
  if (env.CONTAINER_PROFILES) {
    try {
      const parsed = JSON.parse(env.CONTAINER_PROFILES) as Record<string, string>;
      if (parsed && typeof parsed === "object") return parsed;
    } catch (err) {
      console.warn("alpine: CONTAINER_PROFILES is not JSON; using the default profile", {
        error: String(err),
      });
    }
  }
  return { default: "SANDBOX_CONTAINER" };
}

/** The profiles a config may name here: what this deployment offers wins over the client's view of it. */
export function offeredProfiles(env: Env): Record<string, string> {
  return env.ALPINE_CONTAINER_HOST_URL
    ? Object.fromEntries(Object.keys(profilesOf(env)).map((p) => [p, "dev-host"]))
    : profilesOf(env);
}
