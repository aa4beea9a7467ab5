import type { Context } from "../context.ts";
import { printJson } from "../output.ts";
import { sandboxService } from "../service.ts";

export async function gcCommand(ctx: Context, opts: { dryRun: boolean }): Promise<void> {
  const dryRun = opts.dryRun;
  const result = await (await sandboxService(ctx)).gc({ dryRun });
  // Prepared environments unused for PREPARED_RETENTION_DAYS go too (docs/environments.md).
  const { listPrepared, removePrepared, unused } = await import("../environments.ts");
  const stale = unused((await listPrepared(ctx.home, ctx.config)).entries);
  const pruned = dryRun ? stale.map((e) => e.key) : await removePrepared(ctx.home, ctx.config, stale);
  // Notification ledgers of local sandboxes destroyed long ago (docs/config.md, `notify`).
  const ledgers = await import("../notify-ledgers.ts");
  const staleLedgers = await ledgers.staleNotifyLedgers(ctx.home, async () => (await ctx.store()).list());
  const ledgersPruned = dryRun
    ? ledgers.ledgerIds(staleLedgers)
    : ledgers.removeNotifyLedgers(ctx.home, staleLedgers);
  if (ctx.globals.json)
    return printJson({
      ...result,
      dry_run: dryRun,
      environments_pruned: pruned,
      notify_ledgers_pruned: ledgersPruned,
    });
  if (ledgersPruned.length)
    process.stdout.write(
      `${dryRun ? "would prune" : "pruned"} notification ledgers of destroyed sandboxes: ${ledgersPruned.join(", ")}\n`,
    );
  if (pruned.length)
    process.stdout.write(`${dryRun ? "would prune" : "pruned"} prepared environments: ${pruned.map((k) => k.slice(0, 12)).join(", ")}
`);
  const verb = dryRun ? "would tear down" : "torn down";
  process.stdout.write(`${verb}: ${result.torn_down.length ? result.torn_down.join(", ") : "none"}\n`);
  for (const k of result.kept) process.stdout.write(`kept ${k.name}: ${k.reason}\n`);
}
