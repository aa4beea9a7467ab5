import { existsSync, realpathSync } from "node:fs";
import { userInfo } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { PASS_THROUGH_ENV } from "@alpine/core/sandbox-env";
import { type BwrapLayout, bwrapArgs, installPrefix } from "./bwrap.ts";
import type { Logger } from "./log.ts";
import { besideCommand, bridgeArgs } from "./net-bridge.ts";

/** Ports inside a closed namespace (its loopback is the agent's alone): OpenCode's, and the proxy's bridge. */
export const INNER_OPENCODE_PORT = 4096;
export const INNER_PROXY_PORT = 3128;
/** Where the bridge's socket dir appears inside: under the sandbox's own /tmp, which is always writable for the mount point. */
const INNER_NET_DIR = "/tmp/.alpine-net";

/**
 * The agent's network as sandboxd arranges it: its model providers point at
 * sandboxd's broker, and with a closed policy its proxy variables at the
 * egress proxy. Under bubblewrap a closed policy also closes the namespace,
 * and both cross it through unix sockets in `namespaceDir` (net-bridge.ts).
 */
export interface AgentNet {
  /** OpenCode's config with the brokered providers pointed at `base`. */
  rewrite(config: Record<string, unknown>, base: string): Record<string, unknown>;
  /** The per-sandbox token: the proxy's password (the broker's key stand-in is the same). */
  token: string;
  /** An allow-list policy: proxy variables are set and the owner's own proxies dropped. */
  closed: boolean;
  /** The proxy's port on the host's 127.0.0.1 (no namespace). */
  hostPort: number;
  /** With bubblewrap and a closed policy: the dir of the bridge's sockets (bind-mounted in). */
  namespaceDir?: string;
}

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
  /** Repo secrets given to the agent (`alpine secrets set --agent`): in OpenCode's environment. */
  secretEnv?: Record<string, string>;
  log: Logger;
  /** How long to wait for the `listening` line (default: OpencodeSupervisor's START_TIMEOUT_MS). */
  startTimeoutMs?: number;
  /** The agent's network (egress proxy, model broker); absent: the host's network and the config as given. */
  net?: AgentNet;
  /** Resolves once the egress proxy listens (OpenCode starts after it). */
  netReady?: Promise<void>;
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

/** The shell file of the environment's variables (docs/environments.md), in the sandbox's home. */
export function environmentScript(home: string): string {
  return join(home, ".alpine-environment.sh");
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
    OPENCODE_CONFIG_CONTENT: JSON.stringify(agentConfig(o)),
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    // The repo's environment variables, known only after the clone (its devcontainer), while
    // OpenCode starts during it: bash sources this file, written once they are known.
    BASH_ENV: environmentScript(o.home),
  };
  // Secret names never shadow what is set here (validateSecretName refuses those names too).
  for (const [k, v] of Object.entries(o.secretEnv ?? {})) if (!(k in env)) env[k] = v;
  if (process.env.USER) env.USER = process.env.USER;
  if (process.env.TZ) env.TZ = process.env.TZ;
  // Network settings the sandbox's owner chose: OpenCode's background plugin install goes
  // through them (npm_config_registry=http://127.0.0.1:9/ skips it, see docs/opencode.md).
  // Under an allow-list the egress proxy replaces the owner's proxies (it connects directly).
  for (const k of PASS_THROUGH_ENV) {
    const v = process.env[k];
    if (v && !(o.net?.closed && /proxy/i.test(k))) env[k] = v;
  }
  if (o.net?.closed) {
    const proxy = `http://alpine:${o.net.token}@127.0.0.1:${proxyPort(o)}`;
    // curl reads only the lower-case http_proxy; Bun and npm read either.
    for (const k of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]) env[k] = proxy;
    // The broker is reached directly (it is the proxy's own address).
    for (const k of ["NO_PROXY", "no_proxy"]) env[k] = "127.0.0.1,localhost,::1";
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

/** The proxy's (and broker's) port as the agent sees it. */
function proxyPort(o: OpencodeOptions): number {
  return o.isolation === "bubblewrap" && o.net?.namespaceDir ? INNER_PROXY_PORT : (o.net?.hostPort ?? 0);
}

/** OpenCode's config, with the brokered providers pointed at sandboxd's broker. */
export function agentConfig(o: OpencodeOptions): Record<string, unknown> {
  const config = opencodeConfig(o.config, o.model);
  return o.net ? o.net.rewrite(config, `http://127.0.0.1:${proxyPort(o)}`) : config;
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
): { cmd: string; args: string[]; bridged?: boolean } {
  const serve = ["serve", "--hostname", "127.0.0.1", "--port", String(port)];
  if (o.isolation === "bubblewrap") {
    const dir = o.net?.namespaceDir;
    const layout: BwrapLayout = {
      ...bwrapLayout(o, readOnly),
      // Only loopback inside; the bridge's socket dir is the one way to sandboxd.
      ...(dir ? { extraArgs: ["--unshare-net", "--bind", dir, INNER_NET_DIR] } : {}),
    };
    if (!dir) return { cmd: "bwrap", args: [...bwrapArgs(layout), "--", o.bin, ...serve] };
    const inner = ["serve", "--hostname", "127.0.0.1", "--port", String(INNER_OPENCODE_PORT)];
    // OpenCode is exec'd at once with the bridge booting beside it (net-bridge.ts): sandboxd
    // takes it as started when both have said so.
    const line = besideCommand(
      process.execPath,
      {
        tcpToUnix: [{ port: INNER_PROXY_PORT, path: join(INNER_NET_DIR, "egress.sock") }],
        unixToTcp: [{ path: join(INNER_NET_DIR, "opencode.sock"), port: INNER_OPENCODE_PORT }],
        // Previews: sandboxd reaches any port the agent serves (preview.ts connectAgentPort).
        anyPort: { path: join(INNER_NET_DIR, "ports.sock") },
      },
      [o.bin, ...inner],
    );
    return { cmd: "bwrap", args: [...bwrapArgs(layout), "--", ...line], bridged: true };
  }
  // Outside bubblewrap nothing kills OpenCode if sandboxd dies; setpriv's parent-death signal does.
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  if (setpriv) return { cmd: setpriv, args: ["--pdeathsig", "KILL", "--", o.bin, ...serve] };
  return { cmd: o.bin, args: serve };
}

/**
 * A shell command confined like the agent (the environment's setup and start
 * commands, docs/environments.md): the same bubblewrap mounts and the same
 * variables as OpenCode minus OpenCode's own, plus `extraEnv`. With
 * `network: "egress"` a closed policy closes its namespace too, its one way
 * out being the egress proxy (through the bridge); `"host"` shares sandboxd's
 * loopback, so a start command's server can be reached from the host.
 */
export function confinedCommand(
  o: OpencodeOptions,
  readOnly: readonly string[],
  shell: string,
  network: "egress" | "host",
  extraEnv: Record<string, string>,
): { cmd: string; args: string[]; env: Record<string, string> } {
  const env = opencodeEnv(o, "");
  for (const k of Object.keys(env)) if (k.startsWith("OPENCODE_")) delete env[k];
  const sh = existsSync("/bin/bash") ? "/bin/bash" : "/bin/sh";
  const line = [sh, "-c", shell];
  if (network === "host" && o.net?.closed && o.isolation === "bubblewrap") {
    // Outside the agent's namespace its proxy address (the bridge's inner port) is not there.
    // (Its proxy listens on a unix socket then: such a command has no proxy, only the host's loopback.)
    for (const k of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]) {
      if (o.net.hostPort) env[k] = `http://alpine:${o.net.token}@127.0.0.1:${o.net.hostPort}`;
      else delete env[k];
    }
  }
  Object.assign(env, extraEnv);
  if (o.isolation === "bubblewrap") {
    const dir = network === "egress" ? o.net?.namespaceDir : undefined;
    const layout: BwrapLayout = {
      ...bwrapLayout(o, readOnly),
      ...(dir ? { extraArgs: ["--unshare-net", "--bind", dir, INNER_NET_DIR] } : {}),
    };
    if (!dir) return { cmd: "bwrap", args: [...bwrapArgs(layout), "--", ...line], env };
    const bridge = bridgeArgs({
      tcpToUnix: [{ port: INNER_PROXY_PORT, path: join(INNER_NET_DIR, "egress.sock") }],
      unixToTcp: [],
      cmd: line,
    });
    return { cmd: "bwrap", args: [...bwrapArgs(layout), "--", process.execPath, ...bridge], env };
  }
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  if (setpriv) return { cmd: setpriv, args: ["--pdeathsig", "KILL", "--", ...line], env };
  return { cmd: line[0] as string, args: line.slice(1), env };
}
