import { DurableObject } from "cloudflare:workers";
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

/**
 * One container per sandbox runtime (named by sandbox id), on the native
 * `ctx.container` API. Its class is bound to an image and instance type in
 * wrangler.jsonc; one subclass per image profile. The SandboxObject drives it
 * over RPC and sends sandboxd traffic through `fetch`.
 */
export class SandboxContainer extends DurableObject<Env> {
  private get container(): Container {
    const c = this.ctx.container;
    if (!c) throw new Error("this Durable Object has no container (containers are disabled here)");
    return c;
  }

  private port(): Fetcher {
    return this.container.getTcpPort(SANDBOXD_PORT);
  }

  /**
   * Starts a fresh container and waits until sandboxd answers /healthz. A container still
   * running here belongs to a runtime that was never recorded (its launch died after starting
   * it): its sandboxd has another token, so it is stopped first rather than adopted.
   */
  async startSandbox(config: string, inactivityMs: number): Promise<void> {
    const c = this.container;
    if (c.running) await this.stopSandbox();
    c.start({ entrypoint: ENTRYPOINT, env: { ALPINE_SANDBOXD_CONFIG: config }, enableInternet: true });
    // Watch for the exit so a crashed container does not look alive; the error is logged by the runtime.
    this.ctx.waitUntil(
      c
        .monitor()
        .catch((err: unknown) => console.warn("alpine: the container exited", { error: String(err) })),
    );
    await c.setInactivityTimeout(inactivityMs);
    const deadline = Date.now() + 120_000;
    let last = "";
    while (Date.now() < deadline) {
      try {
        const res = await this.port().fetch("http://sandbox/healthz", { signal: AbortSignal.timeout(2000) });
        if (res.ok) return;
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`sandboxd in the container did not answer within 120 s (${last})`);
  }

  async isRunning(): Promise<boolean> {
    return this.ctx.container?.running ?? false;
  }

  /** A call keeps this object, and so its container, active; it also re-arms the inactivity timeout. */
  async renew(inactivityMs: number): Promise<boolean> {
    const c = this.ctx.container;
    if (!c?.running) return false;
    await c.setInactivityTimeout(inactivityMs);
    return true;
  }

  /** SIGTERM, a grace period, then destroy. Idempotent. */
  async stopSandbox(): Promise<void> {
    const c = this.ctx.container;
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
