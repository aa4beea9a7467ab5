import { rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * Inside a closed network namespace (bwrap --unshare-net) only loopback
 * exists. Two things must still cross it, through unix sockets in a directory
 * both sides see: OpenCode's HTTP port, which sandboxd calls, and sandboxd's
 * egress proxy and model broker, which OpenCode and its tools call. The bridge
 * is a small Node process in the namespace. With `cmd` it listens, then runs
 * the command as its child and exits with it (a setup command, which needs the
 * proxy at once). Without, it starts beside OpenCode (besideCommand): OpenCode's
 * boot takes seconds and does not wait for the bridge's Node to start (≈150 ms);
 * the bridge says BRIDGE_READY once it listens, and stops OpenCode if it cannot.
 */
export interface BridgeSpec {
  /** Listen on 127.0.0.1:port inside, forward to a unix socket (sandboxd's proxy). */
  tcpToUnix: { port: number; path: string }[];
  /** Listen on a unix socket, forward to 127.0.0.1:port inside (OpenCode). */
  unixToTcp: { path: string; port: number }[];
  /**
   * Listen on a unix socket whose connections first name a port (`3000\n`), then
   * forward to 127.0.0.1:port inside: previews of whatever the agent serves.
   */
  anyPort?: { path: string };
  /** The command it runs once it listens; without one it runs beside its parent. */
  cmd?: string[];
}

/** What a bridge without `cmd` writes to stderr once it listens. */
export const BRIDGE_READY = "alpine net bridge: ready";

/**
 * The bridge program. It runs as `node -e <source> <spec JSON>`, so it must be
 * self-contained: it is turned into source with toString() and gets its
 * modules as arguments (no imports, no helpers from the bundle).
 */
function bridgeMain(
  spec: BridgeSpec,
  net: typeof import("node:net"),
  cp: typeof import("node:child_process"),
  fs: typeof import("node:fs"),
): void {
  const join = (a: import("node:net").Socket, b: import("node:net").Socket): void => {
    a.pipe(b);
    b.pipe(a);
    a.on("error", () => b.destroy());
    b.on("error", () => a.destroy());
    a.on("close", () => b.destroy());
    b.on("close", () => a.destroy());
  };
  let pending = spec.tcpToUnix.length + spec.unixToTcp.length + (spec.anyPort ? 1 : 0);
  const listening = (): void => {
    pending--;
    if (pending === 0) start();
  };
  const fail = (err: Error): void => {
    process.stderr.write(`alpine net bridge: ${err.message}\n`);
    // Beside OpenCode (its parent once the shell exec'd it): without the bridge it is unreachable.
    if (!spec.cmd) process.kill(process.ppid, "SIGKILL");
    process.exit(70);
  };
  for (const f of spec.tcpToUnix) {
    const s = net.createServer((c) => join(c, net.connect(f.path)));
    s.on("error", fail);
    s.listen(f.port, "127.0.0.1", listening);
  }
  for (const r of spec.unixToTcp) {
    // A socket left by an earlier bridge (OpenCode restarted) would make listen fail.
    fs.rmSync(r.path, { force: true });
    const s = net.createServer((c) => join(c, net.connect(r.port, "127.0.0.1")));
    s.on("error", fail);
    s.listen(r.path, listening);
  }
  if (spec.anyPort) {
    fs.rmSync(spec.anyPort.path, { force: true });
    const s = net.createServer((c) => {
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        const nl = head.indexOf(10);
        if (nl < 0) {
          if (head.length > 8) c.destroy();
          return;
        }
        c.off("data", onData);
        c.pause();
        const port = Number(head.subarray(0, nl).toString("latin1"));
        if (!Number.isInteger(port) || port < 1 || port > 65535) {
          c.destroy();
          return;
        }
        const up = net.connect(port, "127.0.0.1");
        const rest = head.subarray(nl + 1);
        if (rest.length) up.write(rest);
        join(c, up);
        c.resume();
      };
      c.on("data", onData);
      c.on("error", () => c.destroy());
    });
    s.on("error", fail);
    s.listen(spec.anyPort.path, listening);
  }
  if (pending === 0) start();
  function start(): void {
    if (!spec.cmd) {
      // BRIDGE_READY, written out: this program is self-contained (net-bridge.test waits for it).
      process.stderr.write("alpine net bridge: ready\n");
      return;
    }
    const child = cp.spawn(spec.cmd[0]!, spec.cmd.slice(1), { stdio: "inherit" });
    for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, () => child.kill(sig));
    child.on("error", fail);
    child.on("exit", (code, sig) => process.exit(code ?? (sig === "SIGKILL" ? 137 : 143)));
  }
}

/** `node` arguments that run the bridge with `spec`. */
export function bridgeArgs(spec: BridgeSpec): string[] {
  const source = `(${bridgeMain.toString()})(JSON.parse(process.argv[1]), require("node:net"), require("node:child_process"), require("node:fs"))`;
  return ["-e", source, JSON.stringify(spec)];
}

/**
 * A command line that starts the bridge (without `cmd`) in the background, then execs `cmd`
 * in its place: `cmd` keeps the process bwrap waits for, and the bridge becomes its child.
 */
export function besideCommand(node: string, spec: Omit<BridgeSpec, "cmd">, cmd: string[]): string[] {
  const bridge = bridgeArgs(spec);
  if (bridge.length !== 3) throw new Error("the bridge's arguments changed: update besideCommand");
  return ["/bin/sh", "-c", '"$1" "$2" "$3" "$4" & shift 4; exec "$@"', "sh", node, ...bridge, ...cmd];
}

/**
 * sandboxd's side of OpenCode's bridge: a TCP port on the host's 127.0.0.1
 * that leads to the unix socket the bridge serves OpenCode on, so everything
 * in sandboxd that calls OpenCode (supervisor, agent, UI proxy) keeps a plain
 * `http://127.0.0.1:port` address.
 */
export async function hostForwarder(path: string): Promise<{ server: Server; port: number }> {
  const server = createServer((c: Socket) => {
    const up = connect(path);
    c.pipe(up);
    up.pipe(c);
    c.on("error", () => up.destroy());
    up.on("error", () => c.destroy());
    c.on("close", () => up.destroy());
    up.on("close", () => c.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  server.unref();
  const a = server.address();
  return { server, port: typeof a === "object" && a ? a.port : 0 };
}

/** Removes a bridge's socket dir (best effort: sandboxd is stopping). */
export function removeBridgeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
