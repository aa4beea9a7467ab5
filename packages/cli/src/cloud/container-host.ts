import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  AlpineError,
  type Provider,
  type RuntimeHandle,
  type RuntimeSpec,
  SandboxdClient,
  toAlpineError,
} from "@alpine/core";

/**
 * `alpine cloud dev`'s stand-in for Cloudflare Containers. workerd cannot
 * start processes, so the dev Worker's Provider asks this small HTTP server
 * (127.0.0.1 only, bearer token) to create, start, stop and destroy
 * runtimes; it runs them with the local provider's code (sandboxd processes on
 * 127.0.0.1, OpenCode under bubblewrap when available). Each call maps 1:1
 * onto the Provider port, so the Durable Object's orchestrator drives real
 * sandboxd exactly as it drives a Container.
 */
export interface ContainerHost {
  url: string;
  token: string;
  close(): Promise<void>;
}

const digest = (s: string) => createHash("sha256").update(s).digest();

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 4 * 1024 * 1024) throw new AlpineError("usage_invalid", "request body too large");
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  return text.trim() ? (JSON.parse(text) as Record<string, unknown>) : {};
}

export async function startContainerHost(opts: {
  provider: Provider;
  token?: string;
  port?: number;
}): Promise<ContainerHost> {
  const token = opts.token ?? randomBytes(32).toString("base64url");
  const p = opts.provider;
  const handleOf = (body: Record<string, unknown>) => {
    const h = body.handle;
    if (!h || typeof h !== "object") throw new AlpineError("usage_invalid", "handle missing");
    return h as RuntimeHandle;
  };
  const specOf = (body: Record<string, unknown>) => {
    const s = body.spec as RuntimeSpec | undefined;
    if (!s || typeof s.sandbox_id !== "string" || !/^[A-Za-z0-9_-]{1,80}$/.test(s.sandbox_id)) {
      throw new AlpineError("usage_invalid", "spec missing or sandbox_id invalid");
    }
    return s;
  };
  // Runtimes started here, so closing the host never leaves a sandboxd behind.
  const started = new Map<string, RuntimeHandle>();
  /**
   * Stopping a runtime on purpose asks its sandboxd to shut down (POST /v1/shutdown) before the
   * provider's SIGTERM: sandboxd runs here with `exit_checkpoint`, and a SIGTERM would have it
   * write and hold a checkpoint nobody collects, cut short by the SIGKILL that follows.
   */
  const stopped = async (handle: RuntimeHandle, then: (h: RuntimeHandle) => Promise<void>) => {
    try {
      const endpoint = await p.endpoint(handle);
      if (endpoint) {
        await new SandboxdClient({
          baseUrl: endpoint.url,
          token: endpoint.token,
          timeoutMs: 5000,
        }).shutdown();
      }
    } catch {
      // Not answering (or gone): the provider's signals below end it anyway.
    }
    await then(handle);
  };
  const ops: Record<string, (body: Record<string, unknown>) => Promise<unknown>> = {
    create: async (b) => ({ handle: await p.create(specOf(b)) }),
    start: async (b) => {
      const spec = specOf(b);
      const handle = await p.start(handleOf(b), spec);
      started.set(spec.sandbox_id, handle);
      return { handle };
    },
    endpoint: async (b) => ({ endpoint: await p.endpoint(handleOf(b)) }),
    stop: async (b) => {
      await stopped(handleOf(b), (h) => p.stop(h));
      return {};
    },
    destroy: async (b) => {
      await stopped(handleOf(b), (h) => p.destroy(h));
      return {};
    },
    "has-workspace": async (b) => ({ value: await p.hasWorkspace(handleOf(b)) }),
    logs: async (b) => ({ lines: await p.logs(handleOf(b), { tail: Number(b.tail ?? 200) }) }),
  };
  const server: Server = createServer(async (req, res) => {
    const send = (status: number, value: unknown) => {
      const body = JSON.stringify(value);
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
    };
    try {
      if (req.method === "GET" && req.url === "/healthz") return send(200, { ok: true });
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
      if (!m || !timingSafeEqual(digest(m[1]!), digest(token))) {
        req.resume();
        throw new AlpineError("unauthorized", "missing or wrong container-host token");
      }
      const op = /^\/v1\/([a-z-]+)$/.exec(req.url ?? "")?.[1];
      const fn = op ? ops[op] : undefined;
      if (req.method !== "POST" || !fn)
        throw new AlpineError("usage_invalid", `no such operation ${req.url}`);
      send(200, await fn(await readJson(req)));
    } catch (err) {
      const e = toAlpineError(err);
      send(e.reason === "unauthorized" ? 401 : e.exitCode === 1 ? 400 : 500, e.toJSON());
    }
  });
  // Starting a sandboxd waits for OpenCode; never cut those requests.
  server.requestTimeout = 0;
  // workerd's connection pool closes idle sockets after 5 s, as Node's server does by default;
  // a request sent as both fire is lost. The client (workerd) closes first when ours is longer.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    async close() {
      server.close();
      server.closeAllConnections();
      await Promise.allSettled([...started.values()].map((h) => stopped(h, (x) => p.stop(x))));
    },
  };
}
