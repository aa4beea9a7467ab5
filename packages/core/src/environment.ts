// The ES module build: its UMD main (what bundlers for Node pick) loads its parts with a dynamic require.
import { type ParseError, parse, printParseErrorCode } from "jsonc-parser/lib/esm/main.js";
import { z } from "zod";

/**
 * A repo's environment (docs/environments.md): what runs before the agent's
 * first task (setup), what runs on every start (start), the variables and
 * ports it declares. Declared in `.devcontainer/devcontainer.json` (the spec's
 * common subset) and in alpine's `environment:` config section, which adds to
 * or overrides it. Pure: sandboxd reads the file after the clone and calls
 * `resolveEnvironment`; `config show` calls it for a local repo path.
 */

/** alpine's `environment:` section (config.ts). */
export const EnvironmentSectionSchema = z.strictObject({
  /** Shell commands run once, in order, before the agent's first task; replaces postCreateCommand. */
  setup: z.array(z.string().min(1)).optional(),
  /** Shell commands run (and kept running) on every start and resume; replaces postStartCommand. */
  start: z.array(z.string().min(1)).optional(),
  /** Variables for setup, start and the agent; over containerEnv/remoteEnv key by key. */
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a variable name"), z.string()).optional(),
  /** Ports the environment serves; added to forwardPorts. */
  ports: z.array(z.number().int().min(1).max(65535)).optional(),
  /** Names of the repo secrets setup and start need (values: `alpine secrets`, never here). */
  secrets: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a variable name")).optional(),
  /** Workspace files whose content keys the prepared-environment cache (default: the lockfiles present). */
  cache_key_files: z.array(z.string().min(1)).optional(),
});
export type EnvironmentSection = z.infer<typeof EnvironmentSectionSchema>;

/** Where the repo's devcontainer lives (the spec's first location; the others are not read). */
export const DEVCONTAINER_PATH = ".devcontainer/devcontainer.json";

/** Lockfiles that key the cache when `cache_key_files` is not set (those present in the workspace). */
export const DEFAULT_CACHE_KEY_FILES = [
  "package-lock.json",
  "npm-shrinkwrap.json",
  "yarn.lock",
  "pnpm-lock.yaml",
  "bun.lockb",
  "bun.lock",
  "poetry.lock",
  "uv.lock",
  "Pipfile.lock",
  "requirements.txt",
  "Cargo.lock",
  "go.sum",
  "Gemfile.lock",
  "composer.lock",
] as const;

/** The devcontainer keys alpine honours (docs/environments.md); any other is reported once. */
const HONOURED_KEYS = new Set([
  "image",
  "build",
  "postCreateCommand",
  "postStartCommand",
  "forwardPorts",
  "containerEnv",
  "remoteEnv",
]);
/** Keys that only name or describe the container: ignored without a word. */
const SILENT_KEYS = new Set(["name", "$schema"]);

/** What alpine takes from a devcontainer.json. */
export interface Devcontainer {
  image: string | null;
  dockerfile: string | null;
  setup: string[];
  start: string[];
  ports: number[];
  env: Record<string, string>;
  /** Keys present and not honoured (reported once, never fatal). */
  unsupported: string[];
  /** Values of honoured keys that could not be used, one line each. */
  problems: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** POSIX shell quoting: a devcontainer command in exec (array) form becomes one shell line. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * A lifecycle command in the spec's three forms: a string (run by a shell),
 * an array (one command without a shell), an object (named commands, which
 * the spec runs in parallel; alpine runs them one after another, in key order).
 */
function lifecycleCommands(key: string, value: unknown, problems: string[]): string[] {
  if (value === undefined) return [];
  if (typeof value === "string") return value.trim() ? [value] : [];
  if (Array.isArray(value)) {
    if (value.length === 0) return [];
    if (value.every((v) => typeof v === "string")) return [value.map(shellQuote).join(" ")];
    problems.push(`${key}: an array must hold strings only`);
    return [];
  }
  if (isObject(value)) {
    return Object.entries(value).flatMap(([name, v]) =>
      typeof v === "string" || Array.isArray(v) ? lifecycleCommands(`${key}.${name}`, v, problems) : [],
    );
  }
  problems.push(`${key}: must be a string, an array of strings or an object of commands`);
  return [];
}

function stringMap(key: string, value: unknown, problems: string[]): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value)) {
    problems.push(`${key}: must be an object of strings`);
    return {};
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") problems.push(`${key}.${k}: must be a string`);
    // ${localEnv:…} / ${containerEnv:…} refer to machines alpine does not mirror: left out, said.
    else if (/\$\{(localEnv|containerEnv|localWorkspaceFolder|containerWorkspaceFolder)/.test(v))
      problems.push(`${key}.${k}: variable substitution (\${...}) is not supported; left out`);
    else out[k] = v;
  }
  return out;
}

/**
 * Parses a devcontainer.json (JSON with comments and trailing commas) into
 * what alpine uses. Syntax errors and unusable values are `problems`, never
 * thrown: a broken devcontainer must not stop a launch.
 */
export function parseDevcontainer(text: string): Devcontainer {
  const errors: ParseError[] = [];
  const raw: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  const problems = errors
    .slice(0, 3)
    .map((e) => `syntax: ${printParseErrorCode(e.error)} at offset ${e.offset}`);
  const empty: Devcontainer = {
    image: null,
    dockerfile: null,
    setup: [],
    start: [],
    ports: [],
    env: {},
    unsupported: [],
    problems,
  };
  if (!isObject(raw)) {
    if (errors.length === 0) problems.push("the file must hold an object");
    return empty;
  }
  const unsupported = Object.keys(raw).filter((k) => !HONOURED_KEYS.has(k) && !SILENT_KEYS.has(k));
  const build = raw.build;
  const dockerfile = isObject(build) && typeof build.dockerfile === "string" ? build.dockerfile : null;
  const ports: number[] = [];
  if (raw.forwardPorts !== undefined) {
    if (!Array.isArray(raw.forwardPorts)) problems.push("forwardPorts: must be an array");
    else
      for (const p of raw.forwardPorts) {
        // "host:port" entries name another container of a compose setup: not this sandbox.
        if (typeof p === "number" && Number.isInteger(p) && p > 0 && p < 65536) ports.push(p);
        else problems.push(`forwardPorts: ${JSON.stringify(p)} is not a port of this container; left out`);
      }
  }
  return {
    image: typeof raw.image === "string" ? raw.image : null,
    dockerfile,
    setup: lifecycleCommands("postCreateCommand", raw.postCreateCommand, problems),
    start: lifecycleCommands("postStartCommand", raw.postStartCommand, problems),
    ports,
    env: {
      ...stringMap("containerEnv", raw.containerEnv, problems),
      ...stringMap("remoteEnv", raw.remoteEnv, problems),
    },
    unsupported,
    problems,
  };
}

/** Where one part of the environment in effect came from. */
/**
 * A prepared environment's manifest.json, as sandboxd writes it next to its artifacts and the
 * control plane reads it from R2 (docs/environments.md, "Prepared environments").
 */
export interface PreparedManifest {
  schema_version: 1;
  key: string;
  repo: string;
  image: string;
  setup: string[];
  key_files: string[];
  created_at: string;
  /** The workspace's ignored paths the preparation holds. */
  paths: string[];
  artifacts: { name: string; sha256: string; bytes: number }[];
}

export type EnvironmentSource = "devcontainer" | "config" | "both" | "none";

/** The environment in effect for a sandbox (sandboxd's status; `config show`). */
export const EffectiveEnvironmentSchema = z.object({
  setup: z.array(z.string()),
  start: z.array(z.string()),
  env: z.record(z.string(), z.string()),
  ports: z.array(z.number().int()),
  secrets: z.array(z.string()),
  cache_key_files: z.array(z.string()).nullable(),
  /** The devcontainer's image or Dockerfile (reported; the sandbox image stays the profile's). */
  devcontainer_image: z.string().nullable(),
  sources: z.object({
    setup: z.enum(["devcontainer", "config", "both", "none"]),
    start: z.enum(["devcontainer", "config", "both", "none"]),
    env: z.enum(["devcontainer", "config", "both", "none"]),
    ports: z.enum(["devcontainer", "config", "both", "none"]),
  }),
  /** Devcontainer keys alpine does not honour, and values it could not use. */
  notices: z.array(z.string()),
});
export type EffectiveEnvironment = z.infer<typeof EffectiveEnvironmentSchema>;

/** One start command, supervised by sandboxd. */
export const ServiceStatusSchema = z.object({
  command: z.string(),
  /** running; exited (0: done, not restarted); restarting (after a failure, with backoff); stopped. */
  state: z.enum(["running", "exited", "restarting", "stopped"]),
  pid: z.number().int().nullable(),
  restarts: z.number().int(),
  last_exit_code: z.number().int().nullable(),
  started_at: z.string().nullable(),
});
export type ServiceStatus = z.infer<typeof ServiceStatusSchema>;

export const EnvironmentStatusSchema = z.object({
  effective: EffectiveEnvironmentSchema,
  setup: z.object({
    /** pending: not yet; ran; restored: from a prepared environment; skipped (--skip-setup, or none declared); failed. */
    state: z.enum(["pending", "running", "ran", "restored", "skipped", "none", "failed"]),
    /** The prepared-environment key (sha256), null without a cache or setup. */
    key: z.string().nullable(),
    ms: z.number().int().nullable(),
    /** Why the preparation was not saved or not used, if it was not. */
    cache_note: z.string().nullable(),
  }),
  services: z.array(ServiceStatusSchema),
});
export type EnvironmentStatus = z.infer<typeof EnvironmentStatusSchema>;

function sourceOf(fromDev: boolean, fromConfig: boolean, merged: boolean): EnvironmentSource {
  if (fromDev && fromConfig) return merged ? "both" : "config";
  return fromConfig ? "config" : fromDev ? "devcontainer" : "none";
}

/**
 * The environment in effect: the devcontainer's, with alpine's section over
 * it. `setup` and `start` given in the config replace the devcontainer's
 * commands (a list cannot be merged meaningfully); `env` merges key by key
 * (config wins); `ports` are the union. Pure (table tests in core/test).
 */
export function resolveEnvironment(
  dev: Devcontainer | null,
  section: EnvironmentSection | undefined,
): EffectiveEnvironment {
  const cfg = section ?? {};
  const d = dev ?? null;
  const setup = cfg.setup ?? d?.setup ?? [];
  const start = cfg.start ?? d?.start ?? [];
  const env = { ...(d?.env ?? {}), ...(cfg.env ?? {}) };
  const ports = [...new Set([...(d?.ports ?? []), ...(cfg.ports ?? [])])].sort((a, b) => a - b);
  const devHas = {
    setup: (d?.setup.length ?? 0) > 0,
    start: (d?.start.length ?? 0) > 0,
    env: Object.keys(d?.env ?? {}).length > 0,
    ports: (d?.ports.length ?? 0) > 0,
  };
  const image = d?.image ?? (d?.dockerfile ? `${d.dockerfile} (build.dockerfile)` : null);
  const notices = [
    ...(d?.unsupported.length
      ? [`${DEVCONTAINER_PATH}: not supported, ignored: ${d.unsupported.join(", ")}`]
      : []),
    ...(d?.problems ?? []).map((p) => `${DEVCONTAINER_PATH}: ${p}`),
    ...(image ? [`${DEVCONTAINER_PATH}: image ${image} is reported, not used (docs/environments.md)`] : []),
  ];
  return {
    setup,
    start,
    env,
    ports,
    secrets: [...(cfg.secrets ?? [])],
    cache_key_files: cfg.cache_key_files ?? null,
    devcontainer_image: image,
    sources: {
      setup: sourceOf(devHas.setup, cfg.setup !== undefined, false),
      start: sourceOf(devHas.start, cfg.start !== undefined, false),
      env: sourceOf(devHas.env, cfg.env !== undefined && Object.keys(cfg.env).length > 0, true),
      ports: sourceOf(devHas.ports, cfg.ports !== undefined && cfg.ports.length > 0, true),
    },
    notices,
  };
}

/** The lockfiles among `present` (workspace-relative paths) that key the cache by default. */
export function cacheKeyFiles(env: EffectiveEnvironment, present: (path: string) => boolean): string[] {
  if (env.cache_key_files) return [...env.cache_key_files];
  return DEFAULT_CACHE_KEY_FILES.filter((f) => present(f));
}

/**
 * The text whose sha256 is the prepared-environment key: the repo, the image, the setup
 * commands and the content hash of each key file (missing: null). Versioned,
 * so a change of what a preparation holds invalidates old ones.
 */
export function preparationKeyInput(input: {
  repo: string;
  image: string;
  setup: readonly string[];
  files: readonly { path: string; sha256: string | null }[];
}): string {
  return JSON.stringify({
    v: 1,
    repo: input.repo,
    image: input.image,
    setup: input.setup,
    files: [...input.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
  });
}
