import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AlpineConfig } from "@alpine/core";
import { AlpineError } from "@alpine/core";
import { execa } from "execa";

/** Whether bubblewrap is installed and can actually create the namespaces we use here. */
export async function bubblewrapWorks(): Promise<{ ok: boolean; detail: string }> {
  try {
    const r = await execa(
      "bwrap",
      [
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-pid",
        "--die-with-parent",
        "true",
      ],
      { timeout: 10_000, reject: false },
    );
    if (r.exitCode === 0) return { ok: true, detail: "bubblewrap works here" };
    return { ok: false, detail: `bwrap cannot create a sandbox here: ${r.stderr.trim().split("\n")[0]}` };
  } catch {
    return { ok: false, detail: "bwrap is not installed (apt-get install bubblewrap)" };
  }
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
