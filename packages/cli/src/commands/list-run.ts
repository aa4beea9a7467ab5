import type { Context } from "../context.ts";

/** `alpine list`: the store alone locally (no YAML, zod or providers), so it starts fast. */
export async function listCommand(ctx: Context): Promise<void> {
  // Local: the store alone (no YAML, zod or providers), so `list` starts fast. Remote: the control plane.
  const { remoteConfig } = await import("../remote-config.ts");
  const remote = await remoteConfig(ctx.globals.config);
  const items = remote
    ? await (await (await import("../service.ts")).sandboxService(ctx, { config: remote })).list()
    : (await (await ctx.store()).list()).map((r) => ({
        name: r.name,
        id: r.id,
        provider: r.provider,
        repo: r.repo,
        image_profile: r.image_profile,
        state: r.state,
        agent: r.agent,
        last_activity: r.last_activity,
        created_at: r.created_at,
      }));
  const { printJson, table, relativeTime } = await import("../output.ts");
  if (ctx.globals.json) return printJson(items);
  if (items.length === 0) {
    process.stdout.write("no sandboxes yet; start one with `alpine launch <name> --repo <url-or-path>`\n");
    return;
  }
  process.stdout.write(
    `${table(
      ["NAME", "STATE", "AGENT", "PROVIDER", "REPO", "LAST ACTIVITY", "CREATED"],
      items.map((i) => [
        i.name,
        i.state,
        i.agent,
        i.provider,
        i.repo,
        relativeTime(i.last_activity),
        relativeTime(i.created_at),
      ]),
    )}\n`,
  );
}
