import { DurableObject } from "cloudflare:workers";
import { DEFAULT_START_PLAN, type StartOutcome, startContainer } from "./container-start.ts";
import type { Env } from "./env.ts";

/** sandboxd's port inside the image (image/Dockerfile EXPOSEs it). */
export const SANDBOXD_PORT = 7000;

/**
 * Cloudflare Containers cannot feed stdin, and the image's sandboxd reads its
 * config (with secrets) from stdin. This entrypoint moves the config from the
 * start-time env into sandboxd's stdin and execs sandboxd without it, so
 * neither sandboxd's nor OpenCode's environment holds it. Only the variable's
 * name is in argv.
 */
const ENTRYPOINT = [
  "/bin/sh",
  "-c",
  'c="$ALPINE_SANDBOXD_CONFIG"; unset ALPINE_SANDBOXD_CONFIG; exec /usr/local/bin/node /opt/alpine/sandboxd/sandboxd.js <<ALPINE_EOF\n$c\nALPINE_EOF\n',
];

/** How long a container keeps running after its object went idle (`CONTAINER_INACTIVITY_SECONDS`, default 600). */
export function inactivityMsOf(env: Pick<Env, "CONTAINER_INACTIVITY_SECONDS">): number {
  return Math.max(10, Number(env.CONTAINER_INACTIVITY_SECONDS ?? 600)) * 1000;
}

/**
 * One container per sandbox runtime (named by sandbox id), on the native
 * `ctx.container` API. Its class is bound to an image and instance type in
 * wrangler.jsonc; one subclass per image profile. The SandboxObject drives it
 * over RPC and sends sandboxd traffic through `fetch`.
 *
 * The container's inactivity timeout belongs to this object's instance: when
 * the object is evicted (70-140 s idle), redeployed or restarted by a
 * `secret put`, the new instance has none and the container would stop
 * shortly after. So a new instance that finds its container running re-arms
 * it before it serves anything (constructor), and every call checks again
 * (a failed re-arm is retried by the next one).
 */
export class SandboxContainer extends DurableObject<Env> {
  /** This instance has set the running container's inactivity timeout. */
  private armed = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(() => this.rearm());
  }

  private get container(): Container {
    const c = this.ctx.container;
    if (!c) throw new Error("this Durable Object has no container (containers are disabled here)");
    return c;
  }

  private port(): Fetcher {
    return this.container.getTcpPort(SANDBOXD_PORT);
  }

  /** Sets the inactivity timeout of a container this instance found running (once per instance). */
  private async rearm(): Promise<void> {
    const c = this.ctx.container;
    if (this.armed || !c?.running) return;
    try {
      await c.setInactivityTimeout(inactivityMsOf(this.env));
      this.armed = true;
    } catch (err) {
      // Not armed: the next call to this object tries again.
      console.warn("alpine: re-arming the container's inactivity timeout failed", { error: String(err) });
    }
  }

  /**
   * Starts a fresh container and waits until sandboxd answers /healthz, retrying allocation when
   * the platform has no instance yet (container-start.ts). A container still running here belongs
   * to a runtime that was never recorded (its launch died after starting it): its sandboxd has
   * another token, so it is stopped first rather than adopted. The outcome is data: an error's
   * reason would not survive the RPC.
   */
  async startSandbox(config: string, inactivityMs: number): Promise<StartOutcome> {
    const c = this.container;
    if (c.running) await this.stopSandbox();
    const outcome = await startContainer(
      c,
      {
        ...DEFAULT_START_PLAN,
        startOptions: {
          entrypoint: ENTRYPOINT,
          env: { ALPINE_SANDBOXD_CONFIG: config },
          enableInternet: true,
        },
        port: SANDBOXD_PORT,
        inactivityMs,
      },
      {
        now: () => Date.now(),
        sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
        waitUntil: (p) => this.ctx.waitUntil(p),
        log: (message, fields) => console.warn(message, fields),
      },
    );
    this.armed = outcome.ok;
    return outcome;
  }

  async isRunning(): Promise<boolean> {
    await this.rearm();
    return this.ctx.container?.running ?? false;
  }

  /** A call keeps this object, and so its container, active; it also re-arms the inactivity timeout. */
  async renew(inactivityMs: number): Promise<boolean> {
    const c = this.ctx.container;
    if (!c?.running) return false;
    await c.setInactivityTimeout(inactivityMs);
    this.armed = true;
    return true;
  }

  /** SIGTERM, a grace period, then destroy. Idempotent. */
  async stopSandbox(): Promise<void> {
    const c = this.ctx.container;
    this.armed = false;
    if (!c?.running) return;
    try {
      c.signal(15);
    } catch {
      // already exiting
    }
    const deadline = Date.now() + 10_000;
    while (c.running && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    if (c.running) {
      await c
        .destroy()
        .catch((err: unknown) =>
          console.warn("alpine: destroying the container failed", { error: String(err) }),
        );
    }
  }

  /** sandboxd's HTTP (API and web UI, WebSocket upgrades included). */
  override async fetch(request: Request): Promise<Response> {
    await this.rearm();
    if (!this.ctx.container?.running) {
      return Response.json(
        {
          error: "the sandbox's container is not running",
          exit_code: 2,
          reason_code: "sandbox_unavailable",
          retryable: true,
          details: {},
        },
        { status: 503 },
      );
    }
    return this.port().fetch(request);
  }
}

/** The same container class on a bigger instance type (image profile `large`, see wrangler.jsonc). */
export class SandboxContainerLarge extends SandboxContainer {}
