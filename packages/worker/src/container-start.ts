/**
 * Starting a Cloudflare Container and knowing when it is up, as the platform
 * really behaves (cloudflare/containers and workerd's container client):
 *
 * - `start()` only asks for an instance. When the platform has none yet (a
 *   class's first deploy is still provisioning, `max_instances` is reached, or
 *   the previous instance of this object is still going away after
 *   `destroy()`), `start()` throws or the container stops at once and
 *   `monitor()` rejects with "there is no container instance that can be
 *   provided to this durable object"; a burst of starts is refused with "you
 *   are requesting too many containers per second". Both are transient:
 *   allocation is retried with backoff, and when it keeps failing the start
 *   is reported as `capacity` (reason `container_capacity`, retryable).
 * - A container that exits while booting (bad image, sandboxd crash) makes
 *   `running` false and settles `monitor()`; the health wait watches both and
 *   fails at once instead of polling /healthz until its deadline.
 *
 * Written against a minimal view of `Container` so tests drive it with a
 * double of the binding; the Durable Object passes `ctx.container` itself.
 */

/** The part of `ctx.container` starting uses. */
export type StartableContainer = Pick<
  Container,
  "running" | "start" | "monitor" | "getTcpPort" | "setInactivityTimeout"
>;

export interface StartPlan {
  startOptions: ContainerStartupOptions;
  port: number;
  /** Path answered with 2xx once the service in the container is ready. */
  healthPath: string;
  inactivityMs: number;
  /** Allocation attempts (start + wait for the instance) before giving up as `capacity`. */
  allocationAttempts: number;
  /** Backoff before the second attempt; doubled each time up to `backoffMaxMs`. */
  backoffMs: number;
  backoffMaxMs: number;
  /** How long a running container may take to answer `healthPath`. */
  healthTimeoutMs: number;
  /** Pause between health probes. */
  healthPollMs: number;
}

export const DEFAULT_START_PLAN = {
  healthPath: "/healthz",
  allocationAttempts: 6,
  backoffMs: 1_000,
  backoffMaxMs: 15_000,
  healthTimeoutMs: 120_000,
  healthPollMs: 500,
} as const;

export interface StartDeps {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Keeps the exit watch alive beyond the call that started it (`ctx.waitUntil`). */
  waitUntil(p: Promise<unknown>): void;
  log(message: string, fields: Record<string, unknown>): void;
}

export type StartFailure = "capacity" | "refused" | "exited" | "unhealthy";

/** What became of a start: plain data, because it crosses a Durable Object RPC boundary. */
export type StartOutcome =
  | { ok: true; attempts: number }
  | {
      ok: false;
      /**
       * capacity: no instance after every attempt (retryable); refused: start() kept throwing for
       * another reason; exited: died while booting; unhealthy: running but never answered.
       */
      kind: StartFailure;
      message: string;
      attempts: number;
      exit_code: number | null;
    };

const CAPACITY_PATTERNS = [
  /no container instance that can be provided/i,
  /too many containers per second/i,
  /maximum number of running container instances/i,
  /container service is unreachable/i,
];

/** A refusal the platform gives while it has no instance for this object: worth another try later. */
export function isCapacityError(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return CAPACITY_PATTERNS.some((p) => p.test(message));
}

/** The exit code in workerd's monitor() rejection ("…exit code: 137", "…signalled the container to exit: 9"). */
function exitCodeOf(err: unknown): number | null {
  const code = (err as { exitCode?: unknown } | null)?.exitCode;
  if (typeof code === "number") return code;
  const match = /(?:exit code|to exit):?\s*(\d+)/i.exec(err instanceof Error ? err.message : String(err));
  return match ? Number(match[1]) : null;
}

type Exit = { error: unknown | null };

/** monitor() settles when the container stops; its outcome, as a value that never rejects. */
function watchExit(c: StartableContainer, deps: StartDeps): Promise<Exit> {
  let watched: Promise<Exit>;
  try {
    watched = c.monitor().then(
      () => ({ error: null }),
      (error: unknown) => ({ error }),
    );
  } catch (error) {
    watched = Promise.resolve({ error });
  }
  deps.waitUntil(
    watched.then(({ error }) => {
      if (error) deps.log("alpine: the container exited", { error: String(error) });
    }),
  );
  return watched;
}

type Health = { kind: "healthy" } | { kind: "exited"; exit: Exit } | { kind: "unhealthy"; last: string };

/** Polls the health path until it answers, the container stops, or the deadline passes. */
async function waitHealthy(
  c: StartableContainer,
  exited: Promise<Exit>,
  plan: StartPlan,
  deps: StartDeps,
): Promise<Health> {
  const seen: { exit: Exit | null } = { exit: null };
  void exited.then((e) => {
    seen.exit = e;
  });
  const deadline = deps.now() + plan.healthTimeoutMs;
  let last = "no answer yet";
  for (;;) {
    if (seen.exit) return { kind: "exited", exit: seen.exit };
    if (!c.running) return { kind: "exited", exit: await settledExit(exited, deps) };
    try {
      const res = await c
        .getTcpPort(plan.port)
        .fetch(`http://container${plan.healthPath}`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.ok) return { kind: "healthy" };
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (deps.now() >= deadline) return { kind: "unhealthy", last };
    await deps.sleep(plan.healthPollMs);
  }
}

/** The exit of a container that is no longer running (monitor() may settle a moment after `running` flips). */
async function settledExit(exited: Promise<Exit>, deps: StartDeps): Promise<Exit> {
  const late = deps.sleep(5_000).then(() => ({ error: new Error("the container stopped") }));
  return Promise.race([exited, late]);
}

/**
 * Starts the container and waits until its service answers. Never throws:
 * the outcome says what happened, so the caller (across an RPC) maps it to
 * alpine's reasons.
 */
export async function startContainer(
  c: StartableContainer,
  plan: StartPlan,
  deps: StartDeps,
): Promise<StartOutcome> {
  let lastRefusal = "";
  let refusedForCapacity = true;
  let backoff = plan.backoffMs;
  for (let attempt = 1; attempt <= plan.allocationAttempts; attempt++) {
    if (attempt > 1) {
      await deps.sleep(backoff);
      backoff = Math.min(backoff * 2, plan.backoffMaxMs);
    }
    try {
      c.start(plan.startOptions);
    } catch (err) {
      // Refused (no instance, rate limit, or the previous instance still going away after
      // destroy()): the platform asks for another try.
      lastRefusal = (err as Error).message;
      refusedForCapacity = isCapacityError(err);
      deps.log("alpine: the container start was refused; retrying", { attempt, error: lastRefusal });
      continue;
    }
    const exited = watchExit(c, deps);
    try {
      await c.setInactivityTimeout(plan.inactivityMs);
    } catch (err) {
      // A container that is already gone refuses this too; the health wait below says why it went.
      deps.log("alpine: setting the container's inactivity timeout failed", { error: String(err) });
    }
    const health = await waitHealthy(c, exited, plan, deps);
    if (health.kind === "healthy") return { ok: true, attempts: attempt };
    if (health.kind === "unhealthy") {
      return failure(
        "unhealthy",
        `sandboxd in the container did not answer within ${Math.round(plan.healthTimeoutMs / 1000)} s (${health.last})`,
        attempt,
        null,
      );
    }
    const { error } = health.exit;
    if (error && isCapacityError(error)) {
      lastRefusal = error instanceof Error ? error.message : String(error);
      refusedForCapacity = true;
      deps.log("alpine: no container instance yet; retrying", { attempt, error: lastRefusal });
      continue;
    }
    const code = error ? exitCodeOf(error) : 0;
    return failure(
      "exited",
      `the container exited while starting${code === null ? "" : ` (exit code ${code})`}${error ? `: ${String((error as Error).message ?? error)}` : ""}`,
      attempt,
      code,
    );
  }
  return failure(
    refusedForCapacity ? "capacity" : "refused",
    `${refusedForCapacity ? "no container instance" : "the container start was refused"} after ${plan.allocationAttempts} attempts (${lastRefusal})`,
    plan.allocationAttempts,
    null,
  );
}

function failure(
  kind: StartFailure,
  message: string,
  attempts: number,
  exit_code: number | null,
): StartOutcome {
  return { ok: false, kind, message, attempts, exit_code };
}
