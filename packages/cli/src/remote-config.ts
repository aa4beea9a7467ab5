import type { AlpineConfig } from "@alpine/core";
import { mayBeRemote } from "./remote-hint.ts";

/**
 * For commands that start without configuration (`list`): the full config
 * only when the provider may be `cloudflare` (mayBeRemote); null (no YAML or
 * zod loaded) otherwise.
 */
export async function remoteConfig(configFlag: string | undefined): Promise<AlpineConfig | null> {
  if (!mayBeRemote(configFlag)) return null;
  const { loadConfig } = await import("./config-loader.ts");
  const config = loadConfig({ configPath: configFlag }).config;
  const { PROVIDERS } = await import("@alpine/core/provider-kinds");
  return PROVIDERS[config.sandbox.provider].runs_in === "control_plane" ? config : null;
}
