import type { Context } from "../context.ts";

/** `alpine list`: the store alone locally (no YAML, zod or providers), so it starts fast. */
export async function listCommand(ctx: Context): Promise<void> {
  // Local: the store alone (no YAML, zod or providers), so `list` starts fast. Remote: the control plane.
  const { remoteConfig } = await import("../remote-config.ts");
  const remote = await remoteConfig(ctx.globals.config);
  const { localListItem, printList, withOverlaps } = await import("./list-view.ts");
  const items = remote
    ? await (await (await import("../service.ts")).sandboxService(ctx, { config: remote })).list()
    : withOverlaps((await (await ctx.store()).list()).map(localListItem));
  printList(items, ctx.globals.json);
}
