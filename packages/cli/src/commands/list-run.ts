import type { Context } from "../context.ts";

/** `alpine list`: the store alone locally (no YAML, zod or providers), so it starts fast. */
export async function listCommand(ctx: Context, opts: { all?: boolean } = {}): Promise<void> {
  // Local: the store alone (no YAML, zod or providers), so `list` starts fast. Remote: the control plane.
  const { remoteConfig } = await import("../remote-config.ts");
  const remote = await remoteConfig(ctx.globals.config);
  const { localListItem, mayHaveSuspendedItself, printList, withOverlaps } = await import("./list-view.ts");
  const { sandboxService } = await import("../service.ts");
  let items = remote ? await (await sandboxService(ctx, { config: remote })).list({ all: opts.all }) : null;
  if (!items) {
    const records = await (await ctx.store()).list();
    items = mayHaveSuspendedItself(records)
      ? await listAskingProviders(ctx)
      : withOverlaps(records.map(localListItem));
  }
  printList(items, ctx.globals.json);
}

/**
 * The orchestrator's list: a sandbox whose runtime suspended itself is recorded `suspended` first
 * (it asks the providers, so it needs the configuration this command otherwise does without).
 */
async function listAskingProviders(ctx: Context) {
  const [{ createContext }, { sandboxService }] = await Promise.all([
    import("../context.ts"),
    import("../service.ts"),
  ]);
  const full = await createContext(ctx.globals);
  try {
    return await (await sandboxService(full)).list();
  } finally {
    full.close();
  }
}
