import { env } from "cloudflare:workers";
import { AlpineError, DEFAULT_CONFIG, type RuntimeSpec } from "@alpine/core";
import { describe, expect, it } from "vitest";
import { inactivityMsOf, SandboxContainer } from "../src/container-object.ts";
import { DEFAULT_START_PLAN, type StartPlan, startContainer } from "../src/container-start.ts";
import { ContainerProvider } from "../src/providers/container.ts";
import { ContainerDouble, NO_INSTANCE, withContainerDouble } from "./container-double.ts";

/**
 * The SandboxContainer Durable Object and its start, over a double of `ctx.container`
 * (test/container-double.ts): the production class and code path, with the platform's
 * behaviours local workerd cannot produce.
 */

describe("a SandboxContainer whose object restarted (eviction, deploy, secret put)", () => {
  it("re-arms the inactivity timeout of the container it finds running, before it serves anything", async () => {
    const container = ContainerDouble.alreadyRunning();
    await withContainerDouble("restarted", container, async (state) => {
      const object = new SandboxContainer(state, env);
      // The first call after the restart (the alarm's probe, a status) finds the timeout set.
      expect(await object.isRunning()).toBe(true);
      expect(container.timeouts).toEqual([inactivityMsOf(env)]);
      // Once per instance, not on every call.
      await object.fetch(new Request("http://sandbox/healthz"));
      expect(container.timeouts).toHaveLength(1);
    });
  });

  it("leaves a stopped container alone", async () => {
    const container = new ContainerDouble();
    await withContainerDouble("stopped", container, async (state) => {
      expect(await new SandboxContainer(state, env).isRunning()).toBe(false);
    });
    expect(container.timeouts).toEqual([]);
  });
});

describe("starting a container", () => {
  it("retries allocation when the platform has no instance yet, then starts", async () => {
    const container = new ContainerDouble(["refused", "no-instance", "ok"]);
    const outcome = await withContainerDouble("capacity-then-ok", container, (state) =>
      new SandboxContainer(state, env).startSandbox("{}", 60_000),
    );
    expect(outcome).toEqual({ ok: true, attempts: 3 });
    expect(container.running).toBe(true);
    // Armed for the container that came up (the one taken back had been armed too).
    expect(container.timeouts.at(-1)).toBe(60_000);
    expect(container.starts).toHaveLength(3);
  });

  it("a container that dies while booting fails at once with its exit code (no 120 s of health polling)", async () => {
    const container = new ContainerDouble(["crash"]);
    const outcome = await withContainerDouble("crash", container, (state) =>
      new SandboxContainer(state, env).startSandbox("{}", 60_000),
    );
    expect(outcome).toMatchObject({ ok: false, kind: "exited", exit_code: 1, attempts: 1 });
    // A handful of probes while it was up, not the 240 of a full health wait.
    expect(container.healthProbes).toBeLessThan(5);
  });

  it("gives up as `capacity` after its attempts, backing off between them", async () => {
    const container = new ContainerDouble(Array(10).fill("refused"));
    const sleeps: number[] = [];
    let now = 0;
    const plan: StartPlan = {
      ...DEFAULT_START_PLAN,
      startOptions: { enableInternet: false },
      port: 7000,
      inactivityMs: 1000,
    };
    const outcome = await startContainer(container, plan, {
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
      waitUntil: () => {},
      log: () => {},
    });
    expect(outcome).toMatchObject({ ok: false, kind: "capacity", attempts: plan.allocationAttempts });
    expect(outcome.ok ? "" : outcome.message).toContain(NO_INSTANCE);
    expect(sleeps).toEqual([1_000, 2_000, 4_000, 8_000, 15_000]);
    expect(container.starts).toHaveLength(plan.allocationAttempts);
  });

  it("the provider reports capacity as its own retryable reason, a crash as agent_start_failed", async () => {
    const outcomes = [
      {
        ok: false,
        kind: "capacity",
        message: `no container instance after 6 attempts (${NO_INSTANCE})`,
        attempts: 6,
        exit_code: null,
      },
      {
        ok: false,
        kind: "exited",
        message: "the container exited while starting (exit code 1)",
        attempts: 1,
        exit_code: 1,
      },
    ];
    const fakeEnv = {
      ...env,
      FAKE_CONTAINER: { getByName: () => ({ startSandbox: async () => outcomes.shift() }) },
    } as unknown as typeof env;
    const provider = new ContainerProvider(fakeEnv, { default: "FAKE_CONTAINER" }, () => "default", 60_000);
    const spec: RuntimeSpec = {
      sandbox_id: "sbx_capacity",
      name: "capacity",
      image: "alpine-sandbox",
      config: DEFAULT_CONFIG,
      auth: {},
    };
    const handle = await provider.create(spec);
    const capacity = await provider.start(handle, spec).catch((e: unknown) => e);
    expect(capacity).toBeInstanceOf(AlpineError);
    expect((capacity as AlpineError).toJSON()).toMatchObject({
      reason_code: "container_capacity",
      retryable: true,
      exit_code: 2,
      details: { cause: "capacity", attempts: 6 },
    });
    const crash = await provider.start(handle, spec).catch((e: unknown) => e);
    expect((crash as AlpineError).toJSON()).toMatchObject({
      reason_code: "agent_start_failed",
      details: { cause: "exited", exit_code: 1 },
    });
  });
});
