import * as fs from "node:fs";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { type AlpineConfig, type EnvLsView, SANDBOX_IMAGE } from "@alpine/core";
import { PROVIDERS } from "@alpine/core/provider-kinds";
import { ENVIRONMENTS_VOLUME } from "./providers/docker.ts";
import { docker, dockerObjectExists, firstLine } from "./providers/docker-cli.ts";
import { preparedEnvironmentsDir } from "./providers/local-sandboxd.ts";

/**
 * The prepared-environment stores `alpine env ls / rm` and `alpine gc` read
 * (docs/environments.md): a directory for local sandboxes, the named volume
 * alpine-environments on the Docker host (read through a throwaway container
 * of the sandbox image, so a remote Docker host works too), and the control
 * plane's R2 store when the provider is cloudflare (its `environments` routes).
 */

/** One preparation as `alpine env ls --json` shows it (core's PreparedEnvironmentSchema). */
export type PreparedEntry = EnvLsView["environments"][number];

/** Unused longer than this, `alpine gc` removes a preparation. */
export const PREPARED_RETENTION_DAYS = 14;

/**
 * Lists a store's dir (`<key>/manifest.json`; its mtime is the last use). Self-contained:
 * also run as `node -e` inside the sandbox image for the docker volume.
 */
function listDir(fs: typeof import("node:fs"), dir: string): unknown[] {
  const out: unknown[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    if (name.startsWith(".")) continue;
    try {
      const file = `${dir}/${name}/manifest.json`;
      const m = JSON.parse(fs.readFileSync(file, "utf8"));
      out.push({ ...m, last_used_at: fs.statSync(file).mtime.toISOString() });
    } catch {
      // Not a finished preparation (a temp dir, a foreign file): not listed.
    }
  }
  return out;
}

function entry(provider: "local" | "docker", raw: unknown): PreparedEntry {
  const m = raw as {
    key: string;
    repo?: string;
    image: string;
    setup: string[];
    key_files: string[];
    created_at: string;
    last_used_at: string;
    artifacts: { bytes: number }[];
  };
  return {
    key: m.key,
    provider,
    repo: m.repo ?? null,
    image: m.image,
    setup: m.setup,
    key_files: m.key_files,
    created_at: m.created_at,
    last_used_at: m.last_used_at,
    bytes: m.artifacts.reduce((n, a) => n + a.bytes, 0),
  };
}

function sandboxImage(config: AlpineConfig): string {
  return config.sandbox.image_profiles[config.sandbox.image_profile] ?? "opencode-default";
}

/** Runs node inside the sandbox image over the environments volume. */
async function inVolume(config: AlpineConfig, source: string, args: string[]) {
  return docker(
    [
      "run",
      "--rm",
      "--network",
      "none",
      "--volume",
      `${ENVIRONMENTS_VOLUME}:${SANDBOX_IMAGE.environments}`,
      "--entrypoint",
      "node",
      sandboxImage(config),
      "-e",
      source,
      ...args,
    ],
    { reject: false },
  );
}

export async function listPrepared(
  home: string,
  config: AlpineConfig,
): Promise<{ entries: PreparedEntry[]; unavailable: { provider: string; reason: string }[] }> {
  const entries = listDir(fs, preparedEnvironmentsDir(home)).map((m) => entry("local", m));
  const unavailable: { provider: string; reason: string }[] = [];
  try {
    if (await dockerObjectExists("volume", ENVIRONMENTS_VOLUME)) {
      const src = `console.log(JSON.stringify((${listDir.toString()})(process.getBuiltinModule("node:fs"), process.argv[1])))`;
      const r = await inVolume(config, src, [SANDBOX_IMAGE.environments]);
      if (r.exitCode !== 0) unavailable.push({ provider: "docker", reason: firstLine(r.stderr) });
      else for (const m of JSON.parse(r.stdout) as unknown[]) entries.push(entry("docker", m));
    }
  } catch (err) {
    // No docker on this machine: only the local store exists, nothing to report.
    if (!/ENOENT|not found|Cannot connect/i.test(String(err)))
      unavailable.push({ provider: "docker", reason: String((err as Error).message ?? err) });
  }
  // The control plane's store (R2) when the provider runs there; the shape is this file's.
  const remote = await controlPlane(config);
  if (remote) {
    try {
      entries.push(...((await remote.call("environments", {})).environments as PreparedEntry[]));
    } catch (err) {
      unavailable.push({ provider: "cloudflare", reason: String((err as Error).message ?? err) });
    }
  }
  return { entries: entries.sort((a, b) => a.last_used_at.localeCompare(b.last_used_at)), unavailable };
}

/** The control plane's client when the configured provider runs there (cloudflare), else null. */
async function controlPlane(config: AlpineConfig) {
  if (PROVIDERS[config.sandbox.provider].runs_in !== "control_plane") return null;
  const { ControlPlaneClient, controlPlaneFrom } = await import("./remote/index.ts");
  return new ControlPlaneClient(controlPlaneFrom(config));
}

/** Removes preparations by key (from whichever store holds them); returns the keys removed. */
export async function removePrepared(
  home: string,
  config: AlpineConfig,
  entries: readonly PreparedEntry[],
): Promise<string[]> {
  const removed: string[] = [];
  const local = preparedEnvironmentsDir(home);
  for (const e of entries.filter((x) => x.provider === "local")) {
    if (!/^[0-9a-f]{64}$/.test(e.key)) continue;
    rmSync(join(local, e.key), { recursive: true, force: true });
    removed.push(e.key);
  }
  const dockerKeys = entries.filter((x) => x.provider === "docker" && /^[0-9a-f]{64}$/.test(x.key));
  if (dockerKeys.length) {
    const src = `for (const k of process.argv.slice(2)) process.getBuiltinModule("node:fs").rmSync(process.argv[1] + "/" + k, { recursive: true, force: true })`;
    const r = await inVolume(config, src, [SANDBOX_IMAGE.environments, ...dockerKeys.map((k) => k.key)]);
    if (r.exitCode === 0) removed.push(...dockerKeys.map((k) => k.key));
  }
  const r2Keys = entries.filter((x) => x.provider === "cloudflare").map((x) => x.key);
  const remote = r2Keys.length ? await controlPlane(config) : null;
  if (remote) removed.push(...(await remote.call("environments_rm", { keys: r2Keys })).removed);
  // Temp dirs of saves that died half-way (older than an hour: none is still being written).
  if (existsSync(local)) {
    for (const name of readdirSync(local)) {
      const p = join(local, name);
      if (name.startsWith(".tmp-") && Date.now() - statSync(p).mtimeMs > 3_600_000)
        rmSync(p, { recursive: true, force: true });
    }
  }
  return removed;
}

/** Preparations unused for PREPARED_RETENTION_DAYS (what `alpine gc` prunes). */
export function unused(entries: readonly PreparedEntry[], now = Date.now()): PreparedEntry[] {
  const limit = now - PREPARED_RETENTION_DAYS * 86_400_000;
  return entries.filter((e) => Date.parse(e.last_used_at) < limit);
}

/** Reads one manifest of the local store (tests, diagnostics). */
export function readLocalManifest(home: string, key: string): unknown {
  return JSON.parse(readFileSync(join(preparedEnvironmentsDir(home), key, "manifest.json"), "utf8"));
}
