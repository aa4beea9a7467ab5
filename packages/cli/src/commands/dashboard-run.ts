import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { AlpineError, type ListItemView, PROVIDERS, silentProgress } from "@alpine/core";
import { type DashboardBackend, DashboardLogins, handleDashboard } from "@alpine/core/dashboard";
import type { Context } from "../context.ts";
import { printJson } from "../output.ts";
import { type SandboxService, sandboxService } from "../service.ts";

/** A form post of the dashboard is a few fields; anything larger is not ours. */
const MAX_BODY_BYTES = 64 * 1024;

/**
 * The sandboxes of every provider configured here: this machine's (local, docker) and, when
 * sandbox.provider runs on the control plane, the control plane's. Each action goes to the
 * service its sandbox's provider uses, as the CLI's own verbs do.
 */
function backendOf(ctx: Context, progressLog: (line: string) => void): DashboardBackend {
  const local = sandboxService(ctx, { provider: "local" });
  const remoteKind = PROVIDERS[ctx.config.sandbox.provider].runs_in === "control_plane";
  const remote = remoteKind ? sandboxService(ctx) : null;
  const providerOf = new Map<string, ListItemView["provider"]>();
  const serviceFor = async (name: string): Promise<SandboxService> => {
    if (!providerOf.has(name)) await list();
    const kind = providerOf.get(name);
    if (!kind) throw new AlpineError("sandbox_not_found", `no sandbox named '${name}'`, { name });
    return PROVIDERS[kind].runs_in === "control_plane" && remote ? remote : local;
  };
  const progress = {
    ...silentProgress,
    step: (text: string) => progressLog(text),
    warn: (text: string) => progressLog(`warning: ${text}`),
  };
  async function list(): Promise<ListItemView[]> {
    const lists = await Promise.all([
      local.then((s) => s.list()),
      remote
        ?.then((s) => s.list())
        .catch((err) => {
          // The control plane being down must not hide this machine's sandboxes; the log says why.
          progressLog(`the control plane's sandboxes are not listed: ${(err as Error).message}`);
          return [];
        }) ?? [],
    ]);
    const items = lists.flat();
    for (const i of items) providerOf.set(i.name, i.provider);
    return items;
  }
  return {
    list,
    status: async (name) => (await serviceFor(name)).status(name),
    diff: async (name) => (await serviceFor(name)).diff(name, { stat: false }),
    logs: async (name) => (await serviceFor(name)).logs(name, { tail: 0 }),
    login: async (name) => (await serviceFor(name)).login(name),
    task: async (name, prompt) => (await serviceFor(name)).task(name, prompt, { wait: false }, progress),
    checkpoint: async (name) => (await serviceFor(name)).checkpoint(name, progress),
    export: async (name, input) => (await serviceFor(name)).export(name, input, progress),
    teardown: async (name, opts) => (await serviceFor(name)).teardown(name, opts, progress),
  };
}

async function toRequest(req: IncomingMessage, origin: string): Promise<Request> {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (Array.isArray(v)) for (const x of v) headers.append(k, x);
    else if (v !== undefined) headers.set(k, v);
  }
  let body: string | undefined;
  if (req.method !== "GET" && req.method !== "HEAD") {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw new AlpineError("usage_invalid", "request body too large");
      chunks.push(chunk);
    }
    body = Buffer.concat(chunks).toString("utf8");
  }
  return new Request(new URL(req.url ?? "/", origin), { method: req.method, headers, body });
}

async function send(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, key) => {
    headers[key] = key === "set-cookie" ? response.headers.getSetCookie() : value;
  });
  res.writeHead(response.status, headers);
  res.end(Buffer.from(await response.arrayBuffer()));
}

export async function dashboardCommand(ctx: Context, opts: { port: number }): Promise<void> {
  const logins = new DashboardLogins();
  // A fresh key per run: the tokens of pages served by an earlier run are refused.
  const csrfKey = randomBytes(32).toString("base64url");
  const log = (line: string) => {
    if (!ctx.globals.json) process.stderr.write(`${line}\n`);
  };
  const backend = backendOf(ctx, log);
  let origin = "";
  const server = createServer((req, res) => {
    void (async () => {
      // Only this machine, by the address it was asked for: a page rebound to another host name
      // (DNS rebinding) carries that name in Host and is refused.
      if (req.headers.host !== new URL(origin).host) {
        res.writeHead(421, { "content-type": "text/plain" }).end("wrong host\n");
        return;
      }
      const response = await handleDashboard(await toRequest(req, origin), {
        backend,
        authenticate: async (r) =>
          (await logins.check(r.headers.get("cookie"))) ? { id: "local", admin: true } : null,
        redeem: (code) => logins.redeem(code),
        csrfKey,
        brand: "alpine",
        signInHint: "Press Enter where `alpine dashboard` runs for a new one-time login link.",
      });
      await send(
        res,
        response ?? new Response("Not found\n", { status: 404, headers: { "content-type": "text/plain" } }),
      );
    })().catch((err) => {
      log(`dashboard: ${(err as Error).message}`);
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("internal error\n");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE"
          ? new AlpineError("usage_invalid", `port ${opts.port} is in use; pass another --port`, {
              port: opts.port,
            })
          : err,
      ),
    );
    server.listen(opts.port, "127.0.0.1", () => resolve());
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const printLink = async (first: boolean) => {
    const { code, expires_at } = await logins.newCode();
    const loginUrl = `${origin}/login/${code}`;
    if (ctx.globals.json) {
      if (first) printJson({ url: `${origin}/`, login_url: loginUrl, expires_at });
      return;
    }
    process.stdout.write(`${loginUrl}\n`);
    if (first)
      process.stderr.write(
        `the dashboard serves ${origin}/ — open the link above to sign in (valid 60 s, usable once); press Enter for a new link, Ctrl-C to stop\n`,
      );
  };
  await printLink(true);
  const input = process.stdin.isTTY ? createInterface({ input: process.stdin }) : null;
  input?.on("line", () => void printLink(false));

  await new Promise<void>((resolve) => {
    const stop = () => {
      input?.close();
      server.closeAllConnections();
      server.close(() => resolve());
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
