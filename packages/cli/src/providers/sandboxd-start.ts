import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { AlpineError } from "@alpine/core";

/**
 * sandboxd writes exactly one line on stdout when it starts: `listening` with
 * its port and pid, or `error` with an alpine error. Every provider that starts
 * sandboxd (a process, a container) waits for that line the same way.
 */
export function awaitListeningLine(
  stdout: Readable,
  opts: { timeoutMs: number; where: string; onTimeout: () => void; exited: Promise<number | null> },
): Promise<{ port: number; pid: number }> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: stdout });
    const fail = (err: AlpineError) => {
      clearTimeout(timer);
      lines.close();
      reject(err);
    };
    const timer = setTimeout(() => {
      opts.onTimeout();
      fail(
        new AlpineError("agent_start_failed", `sandboxd did not start within ${opts.timeoutMs / 1000}s`, {
          log: opts.where,
        }),
      );
    }, opts.timeoutMs);
    lines.once("line", (line) => {
      clearTimeout(timer);
      lines.close();
      let msg: { event?: string; port?: number; pid?: number; error?: unknown } = {};
      try {
        msg = JSON.parse(line);
      } catch {
        // reported below
      }
      if (msg.event === "listening" && typeof msg.port === "number" && typeof msg.pid === "number") {
        resolve({ port: msg.port, pid: msg.pid });
      } else if (msg.event === "error") {
        reject(AlpineError.fromJSON(msg.error, "agent_start_failed"));
      } else {
        reject(
          new AlpineError("agent_start_failed", "sandboxd printed an unexpected first line", {
            log: opts.where,
          }),
        );
      }
    });
    void opts.exited.then((code) =>
      fail(
        new AlpineError("agent_start_failed", `sandboxd exited with ${code} at start; see ${opts.where}`, {
          log: opts.where,
        }),
      ),
    );
  });
}
