import { existsSync, realpathSync } from "node:fs";
import { userInfo } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { PASS_THROUGH_ENV } from "@alpine/core/sandbox-env";
import { type BwrapLayout, bwrapArgs, installPrefix } from "./bwrap.ts";
import type { Logger } from "./log.ts";

/** What OpenCode runs with: where, as whom, under which isolation, with which config. */
export interface OpencodeOptions {
  bin: string;
  workspace: string;
  home: string;
  tmp: string;
  isolation: "bubblewrap" | "none";
  /** Host paths hidden even under a visible path (credential dirs of the user's home, alpine's). */
  mask: string[];
  /** Host paths the user granted read-only (`sandbox.read_only_paths`). */
  readOnlyPaths?: string[];
  model?: string;
  config?: Record<string, unknown>;
  auth?: Record<string, unknown>;
  log: Logger;
  /** How long to wait for the `listening` line (default: OpencodeSupervisor's START_TIMEOUT_MS). */
  startTimeoutMs?: number;
}

/** Headless defaults: never ask, never block on a question. */
const DEFAULT_PERMISSION = { "*": "allow", question: "deny" };

/**
 * OpenCode's config: the user's `opencode.config`, then `model` (if given) over
 * its model, permissions merged key by key over the headless defaults (an
 * explicit key wins: the user may want "ask" somewhere), autoupdate forced off.
 */
export function opencodeConfig(
  config: Record<string, unknown> | undefined,
  model: string | undefined,
): Record<string, unknown> {
  const user = config ?? {};
  const p = user.permission;
  const permission =
    p && typeof p === "object" && !Array.isArray(p)
      ? { ...DEFAULT_PERMISSION, ...p }
      : (p ?? DEFAULT_PERMISSION);
  return { ...user, ...(model ? { model } : {}), permission, autoupdate: false };
}

function findOnPath(name: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** The XDG dirs of OpenCode's home (its data dir is `XDG_DATA_HOME/opencode`). */
export function xdgDirs(home: string): Record<string, string> {
  return {
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_STATE_HOME: join(home, ".local", "state"),
    XDG_CACHE_HOME: join(home, ".cache"),
  };
}

/** The agent's whole environment: nothing from sandboxd's own env but the basics. */
export function opencodeEnv(o: OpencodeOptions, password: string): Record<string, string> {
  let path = process.env.PATH || "/usr/local/bin:/usr/bin:/bin";
  if (!findOnPath("rg", path)) {
    const rg = ["/usr/bin/rg", "/usr/local/bin/rg"].find((p) => existsSync(p));
    if (rg) path = `${path}${delimiter}${dirname(rg)}`;
    else o.log.warn("ripgrep (rg) not found on PATH; OpenCode's search tool will be degraded");
  }
  const env: Record<string, string> = {
    PATH: path,
    HOME: o.home,
    ...xdgDirs(o.home),
    TMPDIR: o.isolation === "bubblewrap" ? "/tmp" : o.tmp,
    LANG: process.env.LANG || "C.UTF-8",
    TERM: "xterm-256color",
    SHELL: existsSync("/bin/bash") ? "/bin/bash" : "/bin/sh",
    GIT_TERMINAL_PROMPT: "0",
    OPENCODE_SERVER_PASSWORD: password,
    OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfig(o.config, o.model)),
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
  };
  if (process.env.USER) env.USER = process.env.USER;
  if (process.env.TZ) env.TZ = process.env.TZ;
  // Network settings the sandbox's owner chose: OpenCode's background plugin install goes
  // through them (npm_config_registry=http://127.0.0.1:9/ skips it, see docs/opencode.md).
  for (const k of PASS_THROUGH_ENV) {
    const v = process.env[k];
    if (v) env[k] = v;
  }
  return env;
}

/** The user's home from the password database (sandboxd's own HOME is the sandbox's). */
function userHome(): string | undefined {
  try {
    return userInfo().homedir;
  } catch {
    return undefined; // no passwd entry (a container's arbitrary uid): nothing to keep out
  }
}

/**
 * Tools the agent runs that may live outside the system dirs (a Node from
 * nvm, a git in /opt): their install prefix read-only (`<prefix>/bin/node`
 * needs `<prefix>/lib`), or the binary alone when the prefix is too wide.
 */
function toolPaths(path: string): string[] {
  const home = userHome();
  const out: string[] = [];
  for (const bin of [process.execPath, findOnPath("git", path), findOnPath("rg", path)]) {
    if (!bin) continue;
    let realBin: string;
    try {
      realBin = realpathSync(bin);
    } catch {
      continue; // gone meanwhile: nothing to show
    }
    out.push(installPrefix(realBin, home) ?? realBin);
  }
  return out;
}

/**
 * What OpenCode sees under bubblewrap (the filesystem part): the system dirs
 * (bwrap.ts), the OpenCode binary, the tools above, `readOnly` (a repo's
 * object cache) and the user's grants read-only; workspace, home and a
 * private /tmp read-write. Tools under a system dir need no mount of their own.
 */
export function bwrapLayout(o: OpencodeOptions, readOnly: readonly string[]): BwrapLayout {
  return {
    workspace: o.workspace,
    home: o.home,
    tmp: o.tmp,
    readOnly: [
      o.bin,
      ...toolPaths(process.env.PATH || "/usr/bin:/bin"),
      ...readOnly,
      ...(o.readOnlyPaths ?? []),
    ],
    mask: o.mask,
  };
}

/**
 * The command line (without env) that runs OpenCode on `port`: under
 * bubblewrap (with `readOnly` host paths visible), else under setpriv's
 * parent-death signal when available.
 */
export function opencodeCommand(
  o: OpencodeOptions,
  port: number,
  readOnly: readonly string[],
): { cmd: string; args: string[] } {
  const serve = ["serve", "--hostname", "127.0.0.1", "--port", String(port)];
  if (o.isolation === "bubblewrap") {
    return { cmd: "bwrap", args: [...bwrapArgs(bwrapLayout(o, readOnly)), "--", o.bin, ...serve] };
  }
  // Outside bubblewrap nothing kills OpenCode if sandboxd dies; setpriv's parent-death signal does.
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  if (setpriv) return { cmd: setpriv, args: ["--pdeathsig", "KILL", "--", o.bin, ...serve] };
  return { cmd: o.bin, args: serve };
}
