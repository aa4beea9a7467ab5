import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { AlpineConfig } from "@alpine/core";
import { userConfigFile } from "./paths.ts";

const MENTIONS_CLOUDFLARE = /provider["']?\s*:\s*["']?cloudflare\b/;

/**
 * For commands that start without configuration (`list`): the full config
 * only when the provider may be `cloudflare`, found by a cheap look at the
 * environment and the config files' text; null (no YAML or zod loaded) otherwise.
 */
export async function remoteConfig(configFlag: string | undefined): Promise<AlpineConfig | null> {
  const env = process.env.ALPINE_SANDBOX_PROVIDER;
  let maybe = env === "cloudflare";
  if (env === undefined || env === "") {
    const files = [configFlag ?? process.env.ALPINE_CONFIG ?? resolve("alpine.yaml"), userConfigFile()];
    maybe = files.some((f) => {
      try {
        return existsSync(f) && MENTIONS_CLOUDFLARE.test(readFileSync(f, "utf8"));
      } catch {
        return false;
      }
    });
  }
  if (!maybe) return null;
  const { loadConfig } = await import("./config-loader.ts");
  const config = loadConfig({ configPath: configFlag }).config;
  return config.sandbox.provider === "cloudflare" ? config : null;
}
