import { type ChildProcess, spawn } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BRIDGE_READY, besideCommand } from "../src/net-bridge.ts";
import { getOver, tempDir } from "./helpers.ts";

/*
 * OpenCode's bridge started beside it (the command sandboxd runs under bubblewrap, here without
 * it): the command is exec'd at once in the shell's place, the bridge serves beside it and says
 * so, and a bridge that cannot listen takes the command down with it.
 */

const temp = () => tempDir("alpine-bridge-");

/** A stand-in for OpenCode: an HTTP server on `port` that answers with its own pid. */
const server = (port: number) => [
  process.execPath,
  "-e",
  `require("node:http").createServer((q, r) => r.end(String(process.pid))).listen(${port}, "127.0.0.1", () => console.log("listening"))`,
];

function lines(child: ChildProcess): { seen: string[]; until: (line: string) => Promise<void> } {
  const seen: string[] = [];
  const waiters: [string, () => void][] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    let buf = "";
    stream.on("data", (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        seen.push(line);
        for (const [want, done] of waiters) if (want === line) done();
      }
    });
  }
  return {
    seen,
    until: (line) =>
      seen.includes(line) ? Promise.resolve() : new Promise((resolve) => waiters.push([line, resolve])),
  };
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });

describe("the bridge beside OpenCode", () => {
  it("execs the command in the shell's place, says when it listens, and forwards to the command", async () => {
    const dir = temp();
    const port = 20000 + Math.floor(Math.random() * 20000);
    const [cmd, ...args] = besideCommand(
      process.execPath,
      { tcpToUnix: [], unixToTcp: [{ path: join(dir, "opencode.sock"), port }] },
      server(port),
    );
    const child = spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    try {
      const out = lines(child);
      await Promise.all([out.until("listening"), out.until(BRIDGE_READY)]);
      const answer = await getOver(() => connect(join(dir, "opencode.sock")));
      // The server answering through the bridge is the process that was spawned: the shell exec'd it.
      expect(answer).toBe(String(child.pid));
    } finally {
      process.kill(-child.pid!, "SIGKILL");
    }
  });

  it("a bridge that cannot listen stops the command, with its reason on stderr", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const [cmd, ...args] = besideCommand(
      process.execPath,
      { tcpToUnix: [], unixToTcp: [{ path: join(temp(), "missing", "opencode.sock"), port }] },
      [process.execPath, "-e", "setTimeout(() => {}, 60000)"],
    );
    const child = spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    const out = lines(child);
    try {
      const code = await exited(child);
      expect(code).not.toBe(0);
      expect(child.signalCode).toBe("SIGKILL");
      expect(out.seen.some((l) => l.startsWith("alpine net bridge: ") && l !== BRIDGE_READY)).toBe(true);
    } finally {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // Already gone with its group: what the test expects.
      }
    }
  });
});
