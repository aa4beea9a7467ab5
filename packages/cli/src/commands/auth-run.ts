import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { AlpineError } from "@alpine/core";
import { PROVIDERS } from "@alpine/core/provider-kinds";
import type { Context } from "../context.ts";
import { pickProviders, readJsonObject } from "../credentials.ts";
import { printJson } from "../output.ts";
import { credentialsPath, opencodeAuthFile } from "../paths.ts";

export async function authSync(ctx: Context, opts: { providers?: string }): Promise<void> {
  const providers = opts.providers
    ? opts.providers
        .split(",")
        .map((p) => p.trim())
        .filter(Boolean)
    : ctx.config.opencode.auth_providers;
  if (providers.length === 0) throw new AlpineError("usage_invalid", "no providers to sync");
  const source = opencodeAuthFile();
  if (!existsSync(source)) {
    throw new AlpineError(
      "credentials_missing",
      `OpenCode's auth file ${source} does not exist; run \`opencode auth login\` first`,
      {
        source,
      },
    );
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(readFileSync(source, "utf8"));
  } catch (err) {
    throw new AlpineError("config_invalid", `${source}: not valid JSON (${(err as Error).message})`, {
      source,
    });
  }
  const { entries, missing } = pickProviders(parsed, providers);
  let out: { providers: string[]; missing: string[]; target: string };
  if (PROVIDERS[ctx.config.sandbox.provider].runs_in === "control_plane") {
    // The control plane keeps them sealed and hands them to a sandbox's container only at its start;
    // nothing is written on this machine.
    const { sandboxService } = await import("../service.ts");
    const remote = (await sandboxService(ctx)) as import("../remote/index.ts").RemoteSandboxService;
    await remote.syncAuth(entries);
    out = { providers: Object.keys(entries), missing, target: `${ctx.config.sandbox.control_plane_url}` };
  } else {
    const target = credentialsPath(ctx.home);
    mkdirSync(ctx.home, { recursive: true, mode: 0o700 });
    // Write-then-rename with 0600 from creation, so the secret is never readable by others, even briefly.
    const tmp = `${target}.${process.pid}.tmp`;
    // Merge: syncing one provider keeps the others synced before.
    const merged = { ...(readJsonObject(target) ?? {}), ...entries };
    writeFileSync(tmp, `${JSON.stringify(merged, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, target);
    out = { providers: Object.keys(entries), missing, target };
  }
  if (ctx.globals.json) return printJson(out);
  process.stdout.write(
    `synced ${out.providers.length ? out.providers.join(", ") : "no providers"} into ${out.target}\n`,
  );
  if (missing.length) process.stderr.write(`not in ${source}: ${missing.join(", ")}\n`);
}
