/**
 * The only variables of the user's environment that reach a sandbox's agent
 * (the npm registry and proxies it may need to reach its model): the local
 * provider hands them to sandboxd, sandboxd to OpenCode. A proxy URL holding a
 * password would be visible to the agent. Under an egress allow-list
 * (`sandbox.egress`) the proxies are replaced by sandboxd's egress proxy.
 */
export const PASS_THROUGH_ENV = [
  "npm_config_registry",
  "NPM_CONFIG_REGISTRY",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
] as const;

/** The PASS_THROUGH_ENV variables `env` sets (non-empty), as sandboxd's config `env` carries them. */
export function passThroughEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of PASS_THROUGH_ENV) {
    const value = env[key];
    if (value) out[key] = value;
  }
  return out;
}
