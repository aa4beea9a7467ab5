import { AlpineError, type WaitFor, type WaitItemView, waitOperation } from "@alpine/core";
import type { Context } from "../context.ts";
import { nodeClock } from "../context.ts";
import { bold, dim, green, printJson, red, yellow } from "../output.ts";
import { type SandboxService, sandboxService } from "../service.ts";

export async function waitCommand(
  ctx: Context,
  names: string[],
  opts: { for: WaitFor; timeout: number | undefined },
): Promise<void> {
  if (names.length === 0) throw new AlpineError("usage_invalid", "name at least one sandbox to wait for");
  const service = await sandboxService(ctx);
  const json = ctx.globals.json;
  const out = await waitOn(service, names, opts.for, opts.timeout, json ? undefined : printStop);
  if (json) printJson(out);
  process.exitCode = out.exit_code;
}

/** The wait both `alpine wait` and `task --wait` run. */
export function waitOn(
  service: SandboxService,
  names: string[],
  waitFor: WaitFor,
  timeoutSeconds: number | undefined,
  onStop?: (item: WaitItemView) => void,
) {
  return waitOperation(
    names,
    { for: waitFor, timeoutMs: timeoutSeconds === undefined ? undefined : Math.round(timeoutSeconds * 1000) },
    { status: (name) => service.status(name), clock: nodeClock, remote: service.remote, onStop },
  );
}

const COLOUR: Record<WaitItemView["outcome"], (s: string) => string> = {
  done: green,
  input: yellow,
  budget: yellow,
  timeout: yellow,
  error: red,
  gone: red,
};

export function printStop(item: WaitItemView): void {
  const took = dim(`(${(item.waited_ms / 1000).toFixed(1)} s)`);
  process.stdout.write(`${bold(item.name)}  ${COLOUR[item.outcome](item.outcome)}  ${item.reason} ${took}\n`);
}
