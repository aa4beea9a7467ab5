import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { PREVIEW_PORT_HEADER } from "@alpine/core/sandboxd-api";
import { descendants } from "./proc.ts";

/**
 * Previews: a port the agent serves on its loopback, reached by a person's
 * browser through sandboxd. Each port has its own origin on sandboxd's one
 * listener, `http://<port>-<name>.localhost:<sandboxd port>`: browsers resolve
 * every `*.localhost` to the loopback, an app lives at `/` as it expects, and
 * cookies (which browsers separate by host, not by port) of one preview never
 * reach another preview, the UI at 127.0.0.1, or another sandbox. The Host
 * header decides: sandboxd answers a preview only for its own name.
 */

/** The login path on a preview origin (an app's own `/auth/…` routes stay the app's). */
export const PREVIEW_AUTH_PREFIX = "/__alpine/auth/";

/** The port a request's Host asks for, when it is a preview host of sandbox `name`; else null. */
export function previewPortOf(host: string | undefined, name: string): number | null {
  if (!host) return null;
  const m = /^(\d{1,5})-([a-z0-9-]+)\.localhost(?::\d{1,5})?$/.exec(host.toLowerCase());
  if (!m || m[2] !== name) return null;
  const port = Number(m[1]);
  return port >= 1 && port <= 65535 && String(port) === m[1] ? port : null;
}

/**
 * The preview port of a request: its Host (`<port>-<name>.localhost`), or the control plane's
 * header naming it (previews on Cloudflare have the Worker's hostnames); else null.
 */
export function previewPortOfRequest(headers: IncomingHttpHeaders, name: string): number | null {
  const byHost = previewPortOf(headers.host, name);
  if (byHost !== null) return byHost;
  const named = headers[PREVIEW_PORT_HEADER];
  if (typeof named !== "string" || !/^[1-9][0-9]{0,4}$/.test(named)) return null;
  const port = Number(named);
  return port <= 65535 ? port : null;
}

/** The preview origin of `port` for a sandboxd reached at `base` (`http://127.0.0.1:N`). */
export function previewOrigin(base: string, name: string, port: number): string {
  const u = new URL(base);
  return `${u.protocol}//${port}-${name}.localhost${u.port ? `:${u.port}` : ""}`;
}

/**
 * A connection to `port` on the agent's loopback: directly when the agent
 * shares sandboxd's network, else through the bridge's ports socket in the
 * namespace dir (net-bridge.ts: the first line names the port).
 */
export function connectAgentPort(port: number, namespaceDir: string | undefined): Socket {
  if (!namespaceDir) return connect(port, "127.0.0.1");
  const s = connect(join(namespaceDir, "ports.sock"));
  s.write(`${port}\n`);
  return s;
}

/** Socket inodes a process holds (`socket:[N]` links in /proc/<pid>/fd). */
function socketInodes(pid: number, into: Set<string>): void {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return; // exited meanwhile, or not ours to read: it serves nothing we could list
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) into.add(m[1]!);
    } catch {
      // closed between the listing and the read
    }
  }
}

/** Listening TCP ports of a /proc/<pid>/net/tcp{,6} table whose socket inode is in `inodes`. */
export function listeningPortsOf(table: string, inodes: ReadonlySet<string>): number[] {
  const out: number[] = [];
  for (const line of table.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    if (cols.length < 10 || cols[3] !== "0A") continue;
    if (!inodes.has(cols[9]!)) continue;
    const port = Number.parseInt(cols[1]!.split(":")[1] ?? "", 16);
    if (port > 0) out.push(port);
  }
  return out;
}

/**
 * The TCP ports the agent's processes listen on: under bubblewrap the
 * descendants of `rootPid` (its pid namespace keeps even a detached server a
 * descendant); without isolation (a container, where everything but sandboxd
 * is the agent's) every process of sandboxd's user but sandboxd. Each
 * process's own /proc/<pid>/net shows the table of its network namespace.
 */
export function agentListeningPorts(
  rootPid: number | null,
  isolation: "bubblewrap" | "none",
  exclude: ReadonlySet<number>,
): number[] {
  let pids: number[];
  if (isolation === "bubblewrap") {
    if (!rootPid) return [];
    pids = [rootPid, ...descendants(rootPid)];
  } else {
    const uid = process.getuid?.();
    pids = [];
    let names: string[] = [];
    try {
      names = readdirSync("/proc");
    } catch {
      return []; // no /proc (not Linux): nothing can be listed
    }
    for (const n of names) {
      if (!/^\d+$/.test(n) || Number(n) === process.pid) continue;
      try {
        if (uid === undefined || statSync(`/proc/${n}`).uid === uid) pids.push(Number(n));
      } catch {
        // exited meanwhile
      }
    }
  }
  const inodes = new Set<string>();
  for (const pid of pids) socketInodes(pid, inodes);
  const ports = new Set<number>();
  const seenNs = new Set<string>();
  for (const pid of pids) {
    let ns: string;
    try {
      ns = readlinkSync(`/proc/${pid}/ns/net`);
    } catch {
      continue; // exited meanwhile
    }
    if (seenNs.has(ns)) continue;
    seenNs.add(ns);
    for (const file of ["tcp", "tcp6"]) {
      try {
        for (const p of listeningPortsOf(readFileSync(`/proc/${pid}/net/${file}`, "utf8"), inodes))
          if (!exclude.has(p)) ports.add(p);
      } catch {
        // no IPv6 table, or the process exited
      }
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/** `status`'s ports: the declared ones and the ones the agent listens on, each with whether it listens. */
export function previewPorts(
  declared: readonly number[],
  listening: readonly number[],
): { port: number; declared: boolean; listening: boolean }[] {
  const all = new Set([...declared, ...listening]);
  return [...all]
    .sort((a, b) => a - b)
    .map((port) => ({ port, declared: declared.includes(port), listening: listening.includes(port) }));
}
