import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { AlpineError, type SandboxSecret, type StoredSecret, secretsForRepo } from "@alpine/core";
import { secretsPath } from "./paths.ts";

/**
 * `alpine secrets` on this machine: one JSON file in alpine's home, mode 0600
 * from creation (written then renamed, as `auth sync` writes the model
 * credentials). Values leave it only in a sandboxd's start config.
 */
interface SecretsFile {
  version: 1;
  secrets: StoredSecret[];
}

export function readSecrets(home: string): StoredSecret[] {
  const path = secretsPath(home);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  let parsed: SecretsFile;
  try {
    parsed = JSON.parse(text) as SecretsFile;
  } catch {
    // Never echo the file: it holds the values.
    throw new AlpineError("config_invalid", `${path} is not valid JSON; fix or remove it`, { path });
  }
  if (!parsed || !Array.isArray(parsed.secrets))
    throw new AlpineError("config_invalid", `${path} has no secrets list; fix or remove it`, { path });
  return parsed.secrets;
}

export function writeSecrets(home: string, secrets: readonly StoredSecret[]): void {
  const path = secretsPath(home);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const body: SecretsFile = { version: 1, secrets: [...secrets] };
  writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

/** The secrets a sandbox of `repo` gets from this machine's store. */
export function sandboxSecrets(home: string, repo: string): SandboxSecret[] {
  return secretsForRepo(readSecrets(home), repo);
}
