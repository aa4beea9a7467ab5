import { homedir } from "node:os";
import { join } from "node:path";

/** `$ALPINE_HOME`, default `$XDG_STATE_HOME/alpine` (i.e. ~/.local/state/alpine). */
export function alpineHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ALPINE_HOME) return env.ALPINE_HOME;
  const state = env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(state, "alpine");
}

export function userConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "alpine", "config.yaml");
}

/** OpenCode's own auth.json on this host (source for `alpine auth sync`). */
export function opencodeAuthFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  return join(base, "opencode", "auth.json");
}

export const stateDbPath = (home: string) => join(home, "state.db");
export const credentialsPath = (home: string) => join(home, "credentials.json");
/** Repo and global secrets (`alpine secrets`), mode 0600 like the credentials. */
export const secretsPath = (home: string) => join(home, "secrets.json");
export const sandboxDir = (home: string, id: string) => join(home, "sandboxes", id);
