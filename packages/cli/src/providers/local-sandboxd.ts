import { existsSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  type AlpineConfig,
  AlpineError,
  type SandboxdStartInput,
  type SandboxSecret,
  sandboxdNotify,
  sandboxdStartConfig,
} from "@alpine/core";
import { passThroughEnv } from "@alpine/core/sandbox-env";
import { thisHost } from "../context.ts";
import { opencodeBinary as findOpencode, sandboxdEntry as findSandboxd } from "../runtime-paths.ts";

/**
 * sandboxd as a detached process of this machine, one per runtime dir: what
 * the local provider and its warm pool both start, find and stop.
 */

/** The runtime dir's subdirs sandboxd needs before it starts. */
export const RUNTIME_SUBDIRS = ["workspace", "home", "tmp", "logs"] as const;

/** sandboxd writes its pid here at spawn, before the handle is stored. */
export const PID_FILE = "sandboxd.pid";

// Resolved once per process (a module resolution each, 1-3 ms): a pooled launch needs them for
// its fingerprint and again for the refill at exit.
let sandboxdPath: string | undefined;
let opencodePath: string | null | undefined;
export const sandboxdEntry = (): string => (sandboxdPath ??= findSandboxd());
function opencodeBinary(): string {
  if (opencodePath === undefined) opencodePath = findOpencode();
  if (!opencodePath)
    throw new AlpineError(
      "provider_unavailable",
      "OpenCode is not installed (npm dependency opencode-ai)",
      {},
    );
  return opencodePath;
}

/**
 * sandboxd builds OpenCode's environment itself; it gets only the basics from ours (no tokens).
 * The host's network settings (PASS_THROUGH_ENV) travel in its config, as to an early-started
 * sandboxd (bin/early-sandboxd.js) or a container.
 */
export function sandboxdEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    LANG: process.env.LANG ?? "C.UTF-8",
    HOME: home,
  };
}

/**
 * alpine's home and the places of the user's home that hold credentials.
 * Under bubblewrap the agent sees none of the user's home anyway; these stay
 * hidden even when the user grants a dir above them (`sandbox.read_only_paths: [~]`).
 */
function credentialPaths(alpineHome: string): string[] {
  const home = homedir();
  const candidates = [
    alpineHome,
    process.env.XDG_DATA_HOME
      ? join(process.env.XDG_DATA_HOME, "opencode")
      : join(home, ".local", "share", "opencode"),
    ...[
      ".config/opencode",
      ".config/gh",
      ".config/gcloud",
      ".config/hub",
      ".ssh",
      ".aws",
      ".azure",
      ".kube",
      ".docker",
      ".gnupg",
      ".git-credentials",
      ".netrc",
      ".npmrc",
      ".pypirc",
      ".yarnrc.yml",
      ".cargo/credentials.toml",
      ".local/state/alpine",
    ].map((rel) => join(home, rel)),
  ];
  return [...new Set(candidates)].filter((p) => existsSync(p));
}

/** sandbox.read_only_paths with `~/` made the user's home. */
export function readOnlyPaths(paths: readonly string[]): string[] {
  return paths.map((p) => (p.startsWith("~/") ? join(homedir(), p.slice(2)) : p));
}

/**
 * sandboxd's config for a runtime in `dir` of the alpine home `alpineHome`
 * (secrets included: it only ever travels over sandboxd's stdin). The repo
 * cache is the host's, shared by every local sandbox.
 */
export function localSandboxdConfig(opts: {
  alpineHome: string;
  dir: string;
  sandbox: SandboxdStartInput["sandbox"];
  isolation: "bubblewrap" | "none";
  token: string;
  auth?: Record<string, unknown>;
  secrets?: SandboxSecret[];
  /** Where prepared environments are kept (default: the alpine home's shared store). */
  preparedDir?: string;
  extra?: Pick<
    NonNullable<SandboxdStartInput["extra"]>,
    "warm" | "prestart" | "prestart_restore" | "exit_checkpoint" | "notify" | "idle_suspend"
  >;
}) {
  return sandboxdStartConfig({
    sandbox: opts.sandbox,
    token: opts.token,
    listen: { host: "127.0.0.1", port: 0 },
    root: opts.dir,
    isolation: opts.isolation,
    opencode_bin: opencodeBinary(),
    auth: opts.auth,
    preparedDir: opts.preparedDir ?? preparedEnvironmentsDir(opts.alpineHome),
    secrets: opts.secrets,
    extra: {
      env: passThroughEnv(process.env),
      mask_paths: credentialPaths(opts.alpineHome),
      read_only_paths: readOnlyPaths(opts.sandbox.config.sandbox.read_only_paths),
      repo_cache_dir: join(opts.alpineHome, "cache", "repos"),
      ...opts.extra,
    },
  });
}

/** Where local sandboxes keep prepared environments (`alpine env ls`; docs/environments.md). */
export function preparedEnvironmentsDir(alpineHome: string): string {
  return join(alpineHome, "environments");
}

/**
 * The sandboxd processes of a runtime dir: `pid` (the handle's) and the one in
 * its pid file (written at spawn, before the handle is stored: a launcher
 * killed in between leaves only the file). A pid counts only while /proc says
 * it is a sandboxd working in that dir, so a reused pid is never signalled.
 */
function sandboxdPids(dir: string, pid?: number): number[] {
  const pids = new Set<number>();
  if (pid) pids.add(pid);
  try {
    const fromFile = Number(readFileSync(join(dir, PID_FILE), "utf8").trim());
    if (Number.isInteger(fromFile) && fromFile > 0) pids.add(fromFile);
  } catch {
    // no pid file: never started, or started by an older alpine
  }
  const dirs = new Set([dir]);
  try {
    dirs.add(realpathSync(dir));
  } catch {
    // the dir is gone (destroyed); /proc shows its old path
  }
  return [...pids].filter((candidate) => {
    if (!thisHost.isProcessAlive(candidate)) return false;
    try {
      const cwd = readlinkSync(`/proc/${candidate}/cwd`).replace(/ \(deleted\)$/, "");
      return dirs.has(cwd) && readFileSync(`/proc/${candidate}/cmdline`, "utf8").includes("sandboxd");
    } catch {
      // No /proc (not Linux): trust the handle's pid only.
      return candidate === pid;
    }
  });
}

/**
 * Stops the sandboxd of a runtime dir: SIGTERM (sandboxd stops OpenCode), then
 * SIGKILL for what is left after 5 s. Idempotent.
 */
export async function stopSandboxd(dir: string, pid?: number): Promise<void> {
  const pids = sandboxdPids(dir, pid);
  if (pids.length === 0) return;
  const signalGroup = (target: number, signal: NodeJS.Signals) => {
    try {
      // sandboxd leads its own process group (detached), so this reaches OpenCode too.
      process.kill(-target, signal);
    } catch {
      try {
        process.kill(target, signal);
      } catch {
        // already gone
      }
    }
  };
  for (const p of pids) signalGroup(p, "SIGTERM");
  const alive = () => pids.filter((p) => thisHost.isProcessAlive(p));
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && alive().length > 0) await new Promise((r) => setTimeout(r, 50));
  for (const p of alive()) signalGroup(p, "SIGKILL");
}

/**
 * sandboxd's `notify` for a sandbox of this host: webhook secrets from this process's environment
 * (they go on sandboxd's stdin), and the delivery ledger in $ALPINE_HOME/notify/, which a teardown
 * does not remove and the agent cannot see ($ALPINE_HOME is masked).
 */
export function notifyExtra(config: AlpineConfig, alpineHome: string, sandboxId: string) {
  const notify = sandboxdNotify(config.notify, process.env, join(alpineHome, "notify", `${sandboxId}.json`));
  return notify ? { notify } : {};
}
