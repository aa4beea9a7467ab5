/**
 * The hooks every e2e file against `alpine cloud dev` needs: one control plane
 * for the file (started before its tests, stopped after them), what it was
 * doing printed when a test fails, and the file's sandboxes torn down with
 * --force whatever happened.
 */
import { afterAll, afterEach, beforeAll } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { type E2EEnv, type EnvOptions, makeEnv } from "./env.ts";
import { providerUnderTest } from "./providers.ts";

export interface ControlPlaneFile {
  /** The file's environment, once beforeAll has run. */
  readonly e: E2EEnv;
  readonly p: ReturnType<typeof providerUnderTest>;
}

export function useControlPlane(opts: {
  /** Sandboxes the file launches, torn down after it. */
  names: string[];
  /** The Worker's vars (e.g. a shorter ALARM_INTERVAL_SECONDS). */
  vars?: Record<string, string>;
  /** The CLI's environment on top of the provider's (ALPINE_* settings that travel with requests). */
  env?: Record<string, string>;
  envOptions?: EnvOptions;
}): ControlPlaneFile {
  const p = providerUnderTest("cloudflare");
  let e: E2EEnv | undefined;
  beforeAll(async () => {
    e = await makeEnv({ yaml: p.yaml, ...opts.envOptions });
    Object.assign(e.env, p.env, opts.env);
    await p.start?.(e, opts.vars ? { vars: opts.vars } : undefined);
  }, 240_000);
  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail") console.error(p.diagnostics?.());
  });
  afterAll(async () => {
    if (!e) return;
    for (const n of opts.names) {
      await runCli(["teardown", n, "--force", "--json"], { env: e.env, cwd: e.cwd }).catch(() => {});
    }
    await p.stop?.();
    await e.close();
  });
  return {
    p,
    get e() {
      if (!e) throw new Error("the control plane's environment is made in beforeAll");
      return e;
    },
  };
}
