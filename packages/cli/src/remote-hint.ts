import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { userConfigFile } from "./paths.ts";

// Apart from remote-config.ts (which loads the configuration) so that the fast path of
// `alpine list` (fast.ts) can ask without bundling YAML and zod.

const MENTIONS_CLOUDFLARE = /provider["']?\s*:\s*["']?cloudflare\b/;

/**
 * Whether the provider may be `cloudflare`, by a cheap look at the environment and
 * the config files' text (no YAML or zod): false means the local store is the answer.
 */
export function mayBeRemote(configFlag: string | undefined): boolean {
  const env = process.env.ALPINE_SANDBOX_PROVIDER;
  if (env !== undefined && env !== "") return env === "cloudflare";
  const files = [configFlag ?? process.env.ALPINE_CONFIG ?? resolve("alpine.yaml"), userConfigFile()];
  return files.some((f) => {
    try {
      return existsSync(f) && MENTIONS_CLOUDFLARE.test(readFileSync(f, "utf8"));
    } catch {
      // An unreadable file is no evidence of cloudflare; loading the config reports it properly.
      return false;
    }
  });
}
