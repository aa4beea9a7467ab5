import { AlpineError } from "./errors.ts";

/**
 * Repo secrets (`alpine secrets`): named values a sandbox's setup (and, with
 * `agent`, its agent) gets as environment variables. Stored 0600 on the
 * launching machine or sealed on the control plane; they reach sandboxd only
 * in its start config (stdin / the container's start call).
 */

/** What sandboxd gets for one secret (the start config's `secrets`). */
export interface SandboxSecret {
  name: string;
  value: string;
  /** Also in the agent's (OpenCode's) environment; otherwise setup and start commands only. */
  agent: boolean;
}

/** One stored secret: `scope` is "global" or the repo (as `launch` resolves it) it belongs to. */
export interface StoredSecret extends SandboxSecret {
  scope: string;
  updated_at: string;
}

export const GLOBAL_SCOPE = "global";

/** Largest value accepted (on this machine and by the control plane): an environment variable, not a file. */
export const SECRET_VALUE_MAX_BYTES = 64 * 1024;

/** What a secret's listing shows (`alpine secrets ls`): never its value. */
export type SecretListing = Omit<StoredSecret, "value">;

const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/**
 * Names the sandbox sets itself (the agent's basics, OpenCode's own, the
 * proxies sandboxd arranges): a secret of that name would change how the
 * agent runs or where its traffic goes, so it is refused.
 */
const RESERVED = new Set([
  "PATH",
  "HOME",
  "USER",
  "SHELL",
  "TERM",
  "LANG",
  "TZ",
  "TMPDIR",
  "PWD",
  "GIT_TERMINAL_PROMPT",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
]);
const RESERVED_PREFIXES = ["OPENCODE_", "XDG_", "ALPINE_", "LD_", "BASH_FUNC_"];

/** Checks a secret's name (an environment variable name the sandbox does not set itself). */
export function validateSecretName(name: string): string {
  if (!SECRET_NAME.test(name))
    throw new AlpineError(
      "usage_invalid",
      `secret name '${name.slice(0, 60)}' is not an environment variable name (letters, digits and _, not starting with a digit, at most 128)`,
      { name: name.slice(0, 60) },
    );
  if (RESERVED.has(name) || RESERVED_PREFIXES.some((p) => name.startsWith(p)))
    throw new AlpineError(
      "usage_invalid",
      `secret name '${name}' is set by the sandbox itself; choose another`,
      {
        name,
      },
    );
  return name;
}

/**
 * Checks a secret's scope as the control plane receives it: "global" or a repository as the CLI
 * resolved it (a URL or an absolute path; nothing here can resolve it again), so only its shape.
 */
export function validateSecretScope(scope: string): string {
  if (!scope || scope.length > 2048 || /[\s\u0000-\u001f\u007f]/.test(scope))
    throw new AlpineError(
      "usage_invalid",
      `secret scope '${scope.slice(0, 60)}' is neither "global" nor a repository (a URL or a path without spaces, at most 2048 characters)`,
      { scope: scope.slice(0, 60) },
    );
  return scope;
}

/** Checks a secret's value: not empty, no NUL byte (an environment variable cannot hold one), not too large. */
export function validateSecretValue(name: string, value: string): string {
  if (!value)
    throw new AlpineError(
      "usage_invalid",
      `no value for ${name}: pipe it on stdin or type it at the prompt`,
      {
        name,
      },
    );
  if (value.includes("\0"))
    throw new AlpineError("usage_invalid", `the value of ${name} contains a NUL byte`);
  if (new TextEncoder().encode(value).length > SECRET_VALUE_MAX_BYTES)
    throw new AlpineError(
      "usage_invalid",
      `the value of ${name} is larger than ${SECRET_VALUE_MAX_BYTES} bytes`,
      {
        name,
      },
    );
  return value;
}

/**
 * The secrets a sandbox of `repo` gets: the global ones, with a repo's own
 * secret of the same name in their place. Sorted by name, so the start
 * config does not depend on the store's order.
 */
export function secretsForRepo(stored: readonly StoredSecret[], repo: string): SandboxSecret[] {
  const byName = new Map<string, SandboxSecret>();
  for (const s of stored)
    if (s.scope === GLOBAL_SCOPE) byName.set(s.name, { name: s.name, value: s.value, agent: s.agent });
  for (const s of stored)
    if (s.scope === repo) byName.set(s.name, { name: s.name, value: s.value, agent: s.agent });
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The environment the agent gets from a sandbox's secrets: only those marked `agent`. */
export function agentSecretEnv(secrets: readonly SandboxSecret[] | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of secrets ?? []) if (s.agent) env[s.name] = s.value;
  return env;
}
