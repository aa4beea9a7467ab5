import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import {
  DEVCONTAINER_PATH,
  type EffectiveEnvironment,
  type EnvironmentSection,
  parseDevcontainer,
  resolveEnvironment,
} from "@alpine/core/environment";

/**
 * The environment in effect for the repo checked out at `cwd` (docs/environments.md, "Seeing what
 * is in effect"): its devcontainer.json (at the root of the git work tree holding `cwd`, else in
 * `cwd`) with alpine's `environment:` section over it, merged by the same pure function sandboxd
 * uses after a clone. Empty lists in the section count as unset, as sandboxd reads them.
 */
export function localEnvironment(
  cwd: string,
  section: EnvironmentSection | undefined,
): { devcontainer: string | null; effective: EffectiveEnvironment } {
  const root = workTreeRoot(resolve(cwd)) ?? resolve(cwd);
  const path = join(root, DEVCONTAINER_PATH);
  const dev = existsSync(path) ? parseDevcontainer(readFileSync(path, "utf8")) : null;
  const s = section ?? {};
  const set: EnvironmentSection = {
    ...(s.setup?.length ? { setup: s.setup } : {}),
    ...(s.start?.length ? { start: s.start } : {}),
    ...(s.env && Object.keys(s.env).length ? { env: s.env } : {}),
    ...(s.ports?.length ? { ports: s.ports } : {}),
    ...(s.secrets?.length ? { secrets: s.secrets } : {}),
    ...(s.cache_key_files ? { cache_key_files: s.cache_key_files } : {}),
  };
  return { devcontainer: dev ? path : null, effective: resolveEnvironment(dev, set) };
}

/** The nearest directory at or above `dir` holding `.git` (a checkout's root), or null. */
function workTreeRoot(dir: string): string | null {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, ".git"))) return d;
    if (dirname(d) === d) return null;
  }
}

const WHERE: Record<EffectiveEnvironment["sources"]["setup"], string> = {
  devcontainer: "devcontainer.json",
  config: "alpine config",
  both: "devcontainer.json + alpine config",
  none: "-",
};

/** The environment as lines for a person: each part with where it came from, then the notices (once). */
export function environmentLines(e: EffectiveEnvironment, indent = "  "): string[] {
  const rows: [string, string, string][] = [
    ["setup", e.setup.join(" && ") || "(none)", WHERE[e.sources.setup]],
    ["start", e.start.join(" ; ") || "(none)", WHERE[e.sources.start]],
    ["env", Object.keys(e.env).join(", ") || "(none)", WHERE[e.sources.env]],
    ["ports", e.ports.join(", ") || "(none)", WHERE[e.sources.ports]],
  ];
  if (e.secrets.length) rows.push(["secrets", e.secrets.join(", "), "alpine config"]);
  const width = Math.max(...rows.map((r) => r[1].length));
  const lines = rows.map(([k, v, from]) =>
    from === "-"
      ? `${indent}${k.padEnd(8)} ${v}`
      : `${indent}${k.padEnd(8)} ${v.padEnd(width)}  from ${from}`,
  );
  for (const n of e.notices) lines.push(`${indent}notice   ${n}`);
  return lines;
}
