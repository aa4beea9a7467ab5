import { AlpineError } from "@alpine/core";
import type { Context } from "../context.ts";
import { listPrepared, removePrepared } from "../environments.ts";
import { printJson } from "../output.ts";

export async function envLsCommand(ctx: Context): Promise<void> {
  const { entries, unavailable } = await listPrepared(ctx.home, ctx.config);
  if (ctx.globals.json) return printJson({ environments: entries, unavailable });
  if (entries.length === 0) process.stdout.write("no prepared environments\n");
  for (const e of entries) {
    const mb = (e.bytes / 1e6).toFixed(1);
    process.stdout.write(
      `${e.key.slice(0, 12)}  ${e.provider.padEnd(6)} ${mb.padStart(7)} MB  last used ${e.last_used_at}  ${e.repo ?? "?"}  (${e.setup.join(" && ")})\n`,
    );
  }
  for (const u of unavailable) process.stderr.write(`warning: ${u.provider} store not read: ${u.reason}\n`);
}

export async function envRmCommand(ctx: Context, keys: string[], opts: { all: boolean }): Promise<void> {
  if (!opts.all && keys.length === 0)
    throw new AlpineError("usage_invalid", "name the keys to remove (see `alpine env ls`), or pass --all");
  const { entries } = await listPrepared(ctx.home, ctx.config);
  const chosen = opts.all
    ? entries
    : keys.map((k) => {
        const hits = entries.filter((e) => e.key.startsWith(k.toLowerCase()));
        if (hits.length !== 1)
          throw new AlpineError(
            "usage_invalid",
            hits.length === 0
              ? `no prepared environment has a key starting with '${k}'`
              : `'${k}' matches ${hits.length} prepared environments; give more of the key`,
            { key: k },
          );
        return hits[0]!;
      });
  const removed = await removePrepared(ctx.home, ctx.config, chosen);
  if (ctx.globals.json) return printJson({ removed });
  process.stdout.write(
    `removed: ${removed.length ? removed.map((k) => k.slice(0, 12)).join(", ") : "none"}\n`,
  );
}
