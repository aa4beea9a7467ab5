import {
  AlpineError,
  GLOBAL_SCOPE,
  PROVIDERS,
  SECRET_VALUE_MAX_BYTES,
  type StoredSecret,
  validateSecretName,
  validateSecretValue,
} from "@alpine/core";
import type { Context } from "../context.ts";
import { printJson } from "../output.ts";
import { resolveRepo } from "../repo.ts";
import { readSecrets, writeSecrets } from "../secrets-store.ts";

interface ScopeFlags {
  repo?: string;
  global: boolean;
}

/** Largest value accepted: an environment variable, not a file. */
const MAX_VALUE_BYTES = SECRET_VALUE_MAX_BYTES;

function scopeOf(ctx: Context, opts: ScopeFlags): string {
  if (opts.global && opts.repo !== undefined)
    throw new AlpineError("usage_invalid", "give either --repo or --global, not both");
  if (opts.global) return GLOBAL_SCOPE;
  const input = opts.repo ?? ctx.config.repo.default;
  if (input === undefined)
    throw new AlpineError(
      "usage_invalid",
      "which repository? give --repo <url-or-path> (or set repo.default), or --global for every repository",
    );
  return resolveRepo(input);
}

/**
 * The control plane keeps its own sealed store (docs/cloudflare.md, "Repo secrets"): with a
 * provider that runs there, `secrets` talks to it; this machine's file would never reach its
 * sandboxes. Null: this machine's store.
 */
async function controlPlane(ctx: Context) {
  if (PROVIDERS[ctx.config.sandbox.provider].runs_in !== "control_plane") return null;
  const { ControlPlaneClient, controlPlaneFrom } = await import("../remote/index.ts");
  return new ControlPlaneClient(controlPlaneFrom(ctx.config));
}

/** A line typed without echo (raw mode), for a terminal. */
async function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding("utf8");
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = "";
      const onData = (chunk: string) => {
        for (const c of chunk) {
          if (c === "\r" || c === "\n") {
            stdin.off("data", onData);
            resolve(value);
            return;
          }
          if (c === "\u0003") {
            stdin.off("data", onData);
            reject(new AlpineError("usage_invalid", "cancelled"));
            return;
          }
          if (c === "\u007f" || c === "\b") value = value.slice(0, -1);
          else value += c;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write("\n");
  }
}

async function readValue(name: string): Promise<string> {
  if (process.stdin.isTTY) return promptHidden(`value of ${name} (not shown): `);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    size += (c as Buffer).length;
    if (size > MAX_VALUE_BYTES)
      throw new AlpineError("usage_invalid", `the value on stdin is larger than ${MAX_VALUE_BYTES} bytes`);
    chunks.push(c as Buffer);
  }
  // `echo value |` adds one newline; a value never ends in one.
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

export async function secretsSet(
  ctx: Context,
  name: string,
  opts: ScopeFlags & { agent: boolean },
): Promise<void> {
  validateSecretName(name);
  const scope = scopeOf(ctx, opts);
  const remote = await controlPlane(ctx);
  const value = validateSecretValue(name, await readValue(name));
  let replaced: boolean;
  if (remote) {
    // The value travels only in the body of an authenticated request (never a URL or argument).
    replaced = (await remote.call("secrets_set", { name, scope, value, agent: opts.agent })).replaced;
  } else {
    const all = readSecrets(ctx.home);
    replaced = all.some((s) => s.name === name && s.scope === scope);
    const entry: StoredSecret = {
      name,
      scope,
      value,
      agent: opts.agent,
      updated_at: new Date().toISOString(),
    };
    writeSecrets(ctx.home, [...all.filter((s) => !(s.name === name && s.scope === scope)), entry]);
  }
  const out = { name, scope, agent: opts.agent, replaced };
  if (ctx.globals.json) return printJson(out);
  process.stdout.write(
    `${replaced ? "replaced" : "stored"} ${name} for ${scope === GLOBAL_SCOPE ? "every repository" : scope} (${opts.agent ? "setup and agent" : "setup only"})\n`,
  );
}

export async function secretsLs(ctx: Context, _opts: Record<string, never>): Promise<void> {
  const remote = await controlPlane(ctx);
  const secrets = (remote ? (await remote.call("secrets_ls", {})).secrets : readSecrets(ctx.home))
    .map(({ name, scope, agent, updated_at }) => ({ name, scope, agent, updated_at }))
    .sort((a, b) => a.scope.localeCompare(b.scope) || a.name.localeCompare(b.name));
  if (ctx.globals.json) return printJson({ secrets });
  if (!secrets.length) {
    process.stdout.write("no secrets; add one with `alpine secrets set NAME`\n");
    return;
  }
  for (const s of secrets)
    process.stdout.write(`${s.name}\t${s.scope}\t${s.agent ? "setup+agent" : "setup"}\t${s.updated_at}\n`);
}

export async function secretsRm(ctx: Context, name: string, opts: ScopeFlags): Promise<void> {
  validateSecretName(name);
  const scope = scopeOf(ctx, opts);
  const remote = await controlPlane(ctx);
  if (remote) {
    // The control plane refuses one that is not there with the same usage_invalid.
    await remote.call("secrets_rm", { name, scope });
    if (ctx.globals.json) return printJson({ name, scope, removed: true as const });
    process.stdout.write(`removed ${name} for ${scope}\n`);
    return;
  }
  const all = readSecrets(ctx.home);
  const kept = all.filter((s) => !(s.name === name && s.scope === scope));
  if (kept.length === all.length)
    throw new AlpineError(
      "usage_invalid",
      `no secret ${name} for ${scope}; \`alpine secrets ls\` lists them`,
      {
        name,
        scope,
      },
    );
  writeSecrets(ctx.home, kept);
  if (ctx.globals.json) return printJson({ name, scope, removed: true as const });
  process.stdout.write(`removed ${name} for ${scope}\n`);
}
