import { existsSync, readFileSync } from "node:fs";
import type { AlpineConfig, GitCredentials } from "@alpine/core";
import { credentialsPath, opencodeAuthFile } from "./paths.ts";

/** Hosts whose tokens come from GITHUB_TOKEN / GH_TOKEN. */
export function isGithubHost(host: string, config: AlpineConfig): boolean {
  if (host === "github.com" || host.endsWith(".github.com")) return true;
  try {
    const api = new URL(config.github.api_url).hostname;
    return host === api || host === api.replace(/^api\./, "");
  } catch {
    return false; // github.api_url is validated as a URL; only a broken override lands here
  }
}

/** github.require_auth: pushes to GitHub hosts must carry credentials (checked before anything is attempted). */
export function requiresAuth(repo: string, config: AlpineConfig): boolean {
  if (!config.github.require_auth) return false;
  try {
    return isGithubHost(new URL(repo).hostname, config);
  } catch {
    return false; // a local path: nothing is pushed to GitHub from it
  }
}

/**
 * The host's credentials for an http(s) remote: GITHUB_TOKEN/GH_TOKEN for
 * GitHub hosts, else whatever `git credential fill` knows. They are handed to
 * sandboxd per request and never stored.
 */
export async function hostCredentialsFor(repo: string, config: AlpineConfig): Promise<GitCredentials | null> {
  let url: URL;
  try {
    url = new URL(repo);
  } catch {
    return null; // a local path
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  const token = process.env.GITHUB_TOKEN || process.env.GH_TOKEN;
  if (token && isGithubHost(url.hostname, config)) return { username: "x-access-token", password: token };
  const input = `protocol=${url.protocol.slice(0, -1)}\nhost=${url.host}\npath=${url.pathname.replace(/^\//, "")}\n\n`;
  try {
    // Loaded here, not at the top: every command's orchestrator loads this module, and only a
    // clone or a push asks git for credentials (execa is ≈240 KB of JavaScript to compile).
    const { execa } = await import("execa");
    const result = await execa("git", ["credential", "fill"], {
      input,
      timeout: 10_000,
      reject: false,
      // Never prompt: alpine is often run from scripts; missing credentials are reported instead.
      env: { GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "", SSH_ASKPASS: "" },
    });
    if (result.exitCode !== 0) return null;
    const fields = Object.fromEntries(
      result.stdout
        .split("\n")
        .map((line) => line.split("="))
        .filter((kv) => kv.length >= 2)
        .map(([k, ...v]) => [k, v.join("=")]),
    );
    if (!fields.password) return null;
    return { username: fields.username ?? "", password: fields.password };
  } catch {
    // git itself could not run: the same as no stored credentials; a clone or push that
    // needs them then fails with its own error (github_auth_missing, repo_unreachable).
    return null;
  }
}

export function readJsonObject(path: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  try {
    const value = JSON.parse(readFileSync(path, "utf8"));
    return value && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null; // unreadable or not JSON: treated as absent, as the callers document
  }
}

/**
 * OpenCode auth entries a sandbox receives: alpine's own credential file
 * (written by `alpine auth sync`), else the user's OpenCode auth.json,
 * filtered to `opencode.auth_providers`, each entry whole under its own key.
 */
export async function sandboxAuthEntries(
  home: string,
  config: AlpineConfig,
): Promise<Record<string, unknown>> {
  // Per provider: alpine's synced entry wins, else the one in OpenCode's own auth.json.
  const source = {
    ...(readJsonObject(opencodeAuthFile()) ?? {}),
    ...(readJsonObject(credentialsPath(home)) ?? {}),
  };
  return pickProviders(source, config.opencode.auth_providers).entries;
}

export function pickProviders(
  source: Record<string, unknown>,
  providers: readonly string[],
): { entries: Record<string, unknown>; missing: string[] } {
  const entries: Record<string, unknown> = {};
  const missing: string[] = [];
  for (const id of providers) {
    if (Object.hasOwn(source, id)) entries[id] = source[id];
    else missing.push(id);
  }
  return { entries, missing };
}
