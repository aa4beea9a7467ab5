import type { Context } from "../context.ts";

/** `alpine list`: the store alone locally (no YAML, zod or providers), so it starts fast. */
export async function listCommand(ctx: Context): Promise<void> {
  // Local: the store alone (no YAML, zod or providers), so `list` starts fast. Remote: the control plane.
  const { remoteConfig } = await import("../remote-config.ts");
  const remote = await remoteConfig(ctx.globals.config);
  const { localListItem, mayHaveSuspendedItself, printList } = await import("./list-view.ts");
  const service = async () =>
    (await import("../service.ts")).sandboxService(ctx, remote ? { config: remote } : {});
  let items = remote ? await (await service()).list() : null;
  if (!items) {
    const records = await (await ctx.store()).list();
    // A sandbox that suspended itself is recorded so by the orchestrator's list (it asks its provider).
    items = mayHaveSuspendedItself(records) ? await (await service()).list() : records.map(localListItem);
  }
  printList(items, ctx.globals.json);
}
