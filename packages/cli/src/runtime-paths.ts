import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);

/** The bundled sandboxd entry (built by `npm run build`). */
export function sandboxdEntry(): string {
  return join(dirname(require.resolve("@alpine/sandboxd/package.json")), "dist", "sandboxd.js");
}

/** The control plane Worker bundled for `alpine cloud dev` (built by `npm run build`; deploy bundles with wrangler). */
export function controlPlaneBundle(): string {
  return join(dirname(require.resolve("@alpine/worker/package.json")), "dist", "worker.js");
}

/**
 * The OpenCode binary: ALPINE_OPENCODE_BIN, else the project's pinned
 * `opencode-ai` dependency (its postinstall puts the platform binary in bin/).
 */
export function opencodeBinary(): string | null {
  if (process.env.ALPINE_OPENCODE_BIN) return process.env.ALPINE_OPENCODE_BIN;
  try {
    const dir = dirname(require.resolve("opencode-ai/package.json"));
    const bin = join(dir, "bin", process.platform === "win32" ? "opencode.exe" : "opencode.exe");
    return existsSync(bin) ? bin : null;
  } catch {
    return null; // not installed: the caller says so (provider_unavailable, `alpine doctor`)
  }
}

/** The sandbox image's sources (image/Dockerfile), beside the packages in this checkout. */
export function imageDir(): string {
  return join(dirname(require.resolve("@alpine/sandboxd/package.json")), "..", "..", "image");
}
