import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AlpineConfig } from "@alpine/core";
import { AlpineError } from "@alpine/core";

const PROBE_TIMEOUT_MS = 10_000;

/**
 * Whether bubblewrap is installed and can actually create the namespaces we use here. A plain
 * child process (execa's option handling costs the launch several ms of CPU; this runs on every
 * local launch).
 */
export function bubblewrapWorks(): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid"];
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn("bwrap", [...args, "--die-with-parent", "true"], { stdio: ["ignore", "ignore", "pipe"] });
    } catch {
      resolve({ ok: false, detail: "bwrap is not installed (apt-get install bubblewrap)" });
      return;
    }
    let stderr = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), PROBE_TIMEOUT_MS);
    child.once("error", () => {
      clearTimeout(timer);
      resolve({ ok: false, detail: "bwrap is not installed (apt-get install bubblewrap)" });
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ ok: true, detail: "bubblewrap works here" });
      else {
        const why = stderr.trim().split("\n")[0] || (signal ? `killed by ${signal}` : `exit ${code}`);
        resolve({ ok: false, detail: `bwrap cannot create a sandbox here: ${why}` });
      }
    });
  });
}

/**
 * sandbox.isolation → what a local sandbox really gets. `auto` falls back to
 * none with a warning shown once per alpine home; an explicit `bubblewrap`
 * that cannot work is an error, never a silent downgrade.
 */
export async function resolveIsolation(
  config: AlpineConfig,
  home: string,
  warn: (message: string) => void,
): Promise<"bubblewrap" | "none"> {
  const wanted = config.sandbox.isolation;
  if (wanted === "none") return "none";
  const check = await bubblewrapWorks();
  if (check.ok) return "bubblewrap";
  if (wanted === "bubblewrap") {
    throw new AlpineError("provider_unavailable", `sandbox.isolation is bubblewrap but ${check.detail}`, {
      isolation: wanted,
    });
  }
  const marker = join(home, ".isolation-warning-shown");
  if (!existsSync(marker)) {
    warn(
      `${check.detail}; local sandboxes run WITHOUT isolation (set sandbox.isolation: none to silence this)`,
    );
    try {
      writeFileSync(marker, "");
    } catch {
      // The warning shows again next time; nothing else depends on the marker.
    }
  }
  return "none";
}

/** What a local config's isolation is: bubblewrap or none. */
export type IsolationOf = (config: AlpineConfig) => Promise<"bubblewrap" | "none">;

/**
 * resolveIsolation probed once per process and sandbox.isolation value (a
 * `bwrap … true` run), not again for a warm pool's fingerprint, the start and
 * the refill. A failed probe (bubblewrap required but broken) is asked again
 * next time.
 */
export function cachedIsolation(home: string): IsolationOf {
  const resolved = new Map<string, Promise<"bubblewrap" | "none">>();
  return (config) => {
    const wanted = config.sandbox.isolation;
    let isolation = resolved.get(wanted);
    if (!isolation) {
      isolation = resolveIsolation(config, home, (m) => process.stderr.write(`warning: ${m}\n`));
      // The caller gets the failure; this only forgets it so the next call probes again.
      isolation.catch(() => resolved.delete(wanted));
      resolved.set(wanted, isolation);
    }
    return isolation;
  };
}
