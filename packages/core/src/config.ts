import { z } from "zod";
import { EnvironmentSectionSchema } from "./environment.ts";
import { AlpineError } from "./errors.ts";
import { NOTIFY_EVENTS } from "./notify.ts";
import { PROVIDER_KINDS } from "./provider-kinds.ts";

/**
 * alpine's configuration (docs/config.md). Every section is strict (unknown keys are
 * errors) and `prefault`ed, so a section given in part keeps the defaults of
 * the keys it leaves out.
 */
const repoSection = z.strictObject({
  default: z.string().min(1).optional(),
});

/**
 * A host the agent may reach through the sandbox's egress proxy: `example.com`
 * (ports 80 and 443), `*.example.com` (its subdomains), `example.com:8443` (that port).
 */
export const EgressHostSchema = z
  .string()
  .regex(
    /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/i,
    "a host name, *.domain or host:port",
  );

/**
 * `open`: the agent shares the network of the machine sandboxd runs on (alpine
 * before 0.x). `{ allow }`: only the default hosts (the model's API, the repo's
 * git host, package registries) and these, through sandboxd's proxy.
 */
export const EgressSchema = z.union([
  z.literal("open"),
  z.strictObject({ allow: z.array(EgressHostSchema).default([]) }),
]);
export type Egress = z.infer<typeof EgressSchema>;

/** A limit on what the agent spends: tokens (all kinds OpenCode counts) and/or money (the provider's reported cost, USD). */
export const BudgetLimitSchema = z.strictObject({
  tokens: z.number().int().positive().optional(),
  cost: z.number().positive().optional(),
});
/** `sandbox.budget`: per task (one prompt's turn) and per sandbox (every session's total). */
export const BudgetSchema = z.strictObject({
  task: BudgetLimitSchema.optional(),
  sandbox: BudgetLimitSchema.optional(),
});
export type Budget = z.infer<typeof BudgetSchema>;

const sandboxSection = z.strictObject({
  provider: z.enum(PROVIDER_KINDS).default("local"),
  image_profile: z.string().min(1).default("default"),
  image_profiles: z.record(z.string().min(1), z.string().min(1)).default({ default: "opencode-default" }),
  isolation: z.enum(["auto", "bubblewrap", "none"]).default("auto"),
  /**
   * Host paths a local sandbox's agent may read under bubblewrap, besides the
   * system's runtime dirs (docs/providers.md); absolute, `~/` for the home.
   */
  read_only_paths: z
    .array(z.string().regex(/^(\/|~\/)/, "an absolute path, or one starting with ~/"))
    .default([]),
  auto_teardown: z.boolean().default(true),
  completed_retention_minutes: z.number().int().min(0).default(60),
  /**
   * Minutes an idle agent's sandbox keeps running before it is suspended (work saved, runtime
   * stopped; docs/durability.md, "Suspension"). 0: never. Fractions are allowed (tests, benches).
   */
  suspend_after_minutes: z.number().min(0).default(30),
  control_plane_url: z.url().optional(),
  /** Pre-started sandboxd+OpenCode runtimes that a launch adopts (local provider). */
  warm_pool: z.number().int().min(0).max(16).default(0),
  /** What the agent's network reaches (docs/config.md, docs/providers.md). */
  egress: EgressSchema.default({ allow: [] }),
  /** When the agent's turn is stopped for what it spent (docs/config.md); none by default. */
  budget: BudgetSchema.default({}),
});

const dockerSection = z.strictObject({
  /** `bridge` publishes sandboxd on 127.0.0.1; `host` shares the host's network (tests, offline hosts). */
  network: z.enum(["bridge", "host"]).default("bridge"),
  cpus: z.number().positive().optional(),
  memory: z
    .string()
    .regex(/^\d+(\.\d+)?[kmg]?$/i, "a size such as 512m or 4g")
    .optional(),
});

const durabilitySection = z.strictObject({
  store: z.enum(["local", "r2"]).default("local"),
  bucket: z.string().min(1).optional(),
  checkpoint_prefix: z.string().min(1).default("sandboxes"),
  keep_checkpoints: z.number().int().min(1).default(5),
});

const githubSection = z.strictObject({
  branch_prefix: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "letters, digits, '.', '_' and '-'")
    .default("alpine"),
  require_auth: z.boolean().default(true),
  api_url: z.url().default("https://api.github.com"),
});

const opencodeSection = z.strictObject({
  model: z
    .string()
    .regex(/^[^/\s]+\/\S+$/, "a model id of the form provider/model, e.g. openai/gpt-5")
    .optional(),
  auth_providers: z.array(z.string().min(1)).default(["openai"]),
  config: z.record(z.string(), z.unknown()).default({}),
});

const notifyWebhook = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  /** `json`: alpine's signed JSON body; `slack`: a Slack incoming webhook (`{text}`; the URL is its secret). */
  format: z.enum(["json", "slack"]).default("json"),
  /**
   * The name of the environment variable holding the HMAC secret (`json`): read by the CLI at
   * launch and handed to sandboxd on its stdin; the secret itself is never in a config file.
   */
  secret_env: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name")
    .optional(),
});

const notifySection = z.strictObject({
  /** Which states of the agent send a notification. */
  on: z.array(z.enum(NOTIFY_EVENTS)).default([...NOTIFY_EVENTS]),
  webhooks: z.array(notifyWebhook).default([]),
  /** A desktop notification (notify-send) from a local sandbox, where the machine has one. */
  desktop: z.boolean().default(false),
});

export const ConfigSchema = z.strictObject({
  repo: repoSection.prefault({}),
  sandbox: sandboxSection.prefault({}),
  docker: dockerSection.prefault({}),
  durability: durabilitySection.prefault({}),
  github: githubSection.prefault({}),
  opencode: opencodeSection.prefault({}),
  notify: notifySection.prefault({}),
  /** The repo's environment: setup, start, env, ports (docs/environments.md). */
  environment: EnvironmentSectionSchema.prefault({}),
});

export type AlpineConfig = z.infer<typeof ConfigSchema>;

export const DEFAULT_CONFIG: AlpineConfig = ConfigSchema.parse({});

/** Leaf keys whose values are whole objects: set as one value, never merged key by key from env. */
const OPAQUE_LEAVES = new Set([
  "sandbox.image_profiles",
  "sandbox.egress",
  "sandbox.budget",
  "opencode.config",
  "notify.webhooks",
  // Commands hold commas: JSON only (ALPINE_ENVIRONMENT_SETUP='["npm ci"]').
  "environment.setup",
  "environment.start",
  "environment.env",
  "environment.ports",
]);
const ARRAY_LEAVES = new Set([
  "opencode.auth_providers",
  "sandbox.read_only_paths",
  "notify.on",
  "environment.secrets",
  "environment.cache_key_files",
]);

/** Every settable key path, e.g. `sandbox.auto_teardown`. */
export const CONFIG_KEYS: readonly string[] = Object.entries(ConfigSchema.shape).flatMap(
  ([section, schema]) =>
    Object.keys((schema.unwrap() as z.ZodObject).shape).map((key) => `${section}.${key}`),
);

/** `sandbox.auto_teardown` → `ALPINE_SANDBOX_AUTO_TEARDOWN`. */
export function envNameFor(key: string): string {
  return `ALPINE_${key.replace(/\./g, "_").toUpperCase()}`;
}

/** One layer of configuration and where it came from. */
export interface ConfigLayer {
  source: string; // a file path, or "env"
  values: Record<string, unknown>;
  /** For env layers: which variable set which key, to name it in errors and `config show`. */
  keySources?: Record<string, string>;
}

export interface ResolvedConfig {
  config: AlpineConfig;
  /** key path → "default" | file path | "env ALPINE_…" */
  sources: Record<string, string>;
}

type PlainObject = Record<string, unknown>;
const isPlainObject = (v: unknown): v is PlainObject =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Deep merge: objects merge key by key, everything else (arrays too) is replaced. */
export function deepMerge(base: PlainObject, over: PlainObject): PlainObject {
  const out: PlainObject = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] = isPlainObject(prev) && isPlainObject(value) ? deepMerge(prev, value) : value;
  }
  return out;
}

/** Reads `ALPINE_*` variables for known keys into a config layer. */
export function envLayer(env: Record<string, string | undefined>): ConfigLayer {
  const values: PlainObject = {};
  const keySources: Record<string, string> = {};
  for (const key of CONFIG_KEYS) {
    const name = envNameFor(key);
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    const [section, leaf] = key.split(".") as [string, string];
    values[section] ??= {};
    const sectionValues = values[section] as PlainObject;
    sectionValues[leaf] = parseEnvValue(key, raw);
    keySources[key] = `env ${name}`;
  }
  return { source: "env", values, keySources };
}

/** Env values are strings; the key's type (from its default) says how to read one. */
function parseEnvValue(key: string, raw: string): unknown {
  const trimmed = raw.trim();
  const [section, leaf] = key.split(".") as [string, string];
  const fallback = (DEFAULT_CONFIG as unknown as Record<string, Record<string, unknown>>)[section]?.[leaf];
  if (ARRAY_LEAVES.has(key) && !trimmed.startsWith("[")) {
    return trimmed
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  }
  if (typeof fallback === "boolean") return trimmed === "true" ? true : trimmed === "false" ? false : raw;
  if (typeof fallback === "number") return /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : raw;
  if (ARRAY_LEAVES.has(key) || OPAQUE_LEAVES.has(key)) {
    try {
      return JSON.parse(trimmed);
    } catch {
      return raw;
    }
  }
  return raw;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "unrecognized_keys":
      return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}`;
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    default:
      return issue.message;
  }
}

function allowedFor(path: readonly PropertyKey[], issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    if (path.length === 0) return `sections: ${Object.keys(ConfigSchema.shape).join(", ")}`;
    const section = String(path[0]);
    const prefix = `${section}.`;
    return `keys: ${CONFIG_KEYS.filter((k) => k.startsWith(prefix))
      .map((k) => k.slice(prefix.length))
      .join(", ")}`;
  }
  return describeIssue(issue);
}

/** Validates one layer on its own (over the defaults), so an error names the file it came from. */
function validateLayer(layer: ConfigLayer): void {
  const result = ConfigSchema.safeParse(deepMerge({}, layer.values));
  if (result.success) return;
  const issue = result.error.issues[0]!;
  const path = issue.path.map(String);
  const keyPath = path.join(".") || "(top level)";
  const source = layer.keySources?.[path.slice(0, 2).join(".")] ?? layer.source;
  throw new AlpineError("config_invalid", `${source}: ${keyPath}: ${describeIssue(issue)}`, {
    source,
    key: keyPath,
    allowed: allowedFor(issue.path, issue),
    issues: result.error.issues.map((i) => ({
      path: i.path.map(String).join("."),
      message: describeIssue(i),
    })),
  });
}

function leafPaths(values: PlainObject, prefix = ""): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (isPlainObject(value) && !OPAQUE_LEAVES.has(path) && path.split(".").length < 2) {
      out.push(...leafPaths(value, path));
    } else {
      out.push(path);
    }
  }
  return out;
}

/** Merges layers (lowest precedence first) over the defaults and validates the result. */
export function resolveConfig(layers: readonly ConfigLayer[]): ResolvedConfig {
  // Start from the defaults so maps (image_profiles) add to the built-in entries instead of replacing them.
  let merged: PlainObject = JSON.parse(JSON.stringify(DEFAULT_CONFIG));
  const sources: Record<string, string> = Object.fromEntries(CONFIG_KEYS.map((k) => [k, "default"]));
  for (const layer of layers) {
    if (!isPlainObject(layer.values)) {
      throw new AlpineError("config_invalid", `${layer.source}: the file must hold a mapping of sections`, {
        source: layer.source,
        key: "(top level)",
        allowed: `sections: ${Object.keys(ConfigSchema.shape).join(", ")}`,
      });
    }
    validateLayer(layer);
    merged = deepMerge(merged, layer.values);
    for (const path of leafPaths(layer.values)) {
      if (path in sources) sources[path] = layer.keySources?.[path] ?? layer.source;
    }
  }
  const config = ConfigSchema.parse(merged);
  return { config, sources };
}
