import { existsSync, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { AlpineError, type ConfigLayer, envLayer, type ResolvedConfig, resolveConfig } from "@alpine/core";
import { parseDocument } from "yaml";
import { userConfigFile } from "./paths.ts";

const MAX_CONFIG_BYTES = 256 * 1024;

function readYamlLayer(path: string): ConfigLayer {
  let text: string;
  try {
    if (statSync(path).size > MAX_CONFIG_BYTES) {
      throw new AlpineError("config_invalid", `${path}: the file is larger than ${MAX_CONFIG_BYTES} bytes`, {
        source: path,
        key: "(file)",
        allowed: `at most ${MAX_CONFIG_BYTES} bytes`,
      });
    }
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (err instanceof AlpineError) throw err;
    throw new AlpineError("config_invalid", `${path}: cannot read the file (${(err as Error).message})`, {
      source: path,
      key: "(file)",
      allowed: "a readable YAML file",
    });
  }
  // maxAliasCount guards against alias bombs ("billion laughs").
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const problem = doc.errors[0];
  if (problem) {
    const line = problem.linePos?.[0];
    throw new AlpineError(
      "config_invalid",
      `${path}${line ? `:${line.line}:${line.col}` : ""}: invalid YAML: ${problem.message.split("\n")[0]}`,
      { source: path, key: "(yaml)", allowed: "valid YAML" },
    );
  }
  let values: unknown;
  try {
    values = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    throw new AlpineError("config_invalid", `${path}: ${(err as Error).message}`, {
      source: path,
      key: "(yaml)",
      allowed: "YAML without excessive aliases",
    });
  }
  return { source: path, values: values as Record<string, unknown> };
}

export interface LoadedConfig extends ResolvedConfig {
  files: string[];
}

/**
 * The layers, lowest first (docs/config.md, "Where configuration comes from"): built-in defaults < $XDG_CONFIG_HOME/alpine/config.yaml <
 * alpine.yaml (cwd) or --config or ALPINE_CONFIG < ALPINE_* variables.
 */
export function loadConfig(
  opts: { configPath?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): LoadedConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const layers: ConfigLayer[] = [];
  const files: string[] = [];
  const user = userConfigFile(env);
  if (existsSync(user)) {
    layers.push(readYamlLayer(user));
    files.push(user);
  }
  const explicit = opts.configPath ?? env.ALPINE_CONFIG;
  if (explicit) {
    const path = resolve(cwd, explicit);
    if (!existsSync(path)) {
      throw new AlpineError("config_invalid", `${path}: config file not found`, {
        source: path,
        key: "(file)",
        allowed: "an existing YAML file",
      });
    }
    layers.push(readYamlLayer(path));
    files.push(path);
  } else {
    const local = resolve(cwd, "alpine.yaml");
    if (existsSync(local)) {
      layers.push(readYamlLayer(local));
      files.push(local);
    }
  }
  layers.push(envLayer(env));
  return { ...resolveConfig(layers), files };
}
