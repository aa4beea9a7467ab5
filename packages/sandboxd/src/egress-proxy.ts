import { lookup } from "node:dns/promises";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { BlockList, connect, isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { EgressStatus } from "@alpine/core/sandboxd-api";
import type { Logger } from "./log.ts";
import { type ModelBroker, refuse } from "./model-broker.ts";

/**
 * Hosts every `allow` policy lets through: the package registries a setup
 * usually needs (npm, PyPI, crates.io, Go modules, RubyGems). The model's API
 * host and the repo's git host are added per sandbox.
 */
export const DEFAULT_EGRESS_HOSTS = [
  "registry.npmjs.org",
  "registry.yarnpkg.com",
  "pypi.org",
  "files.pythonhosted.org",
  "crates.io",
  "index.crates.io",
  "static.crates.io",
  "proxy.golang.org",
  "sum.golang.org",
  "rubygems.org",
] as const;

/**
 * Addresses no allowed name may lead to: loopback (the host's own services,
 * other sandboxds), private and link-local ranges (cloud metadata at
 * 169.254.169.254, the LAN), CGNAT, multicast, reserved. Checked on the address
 * actually connected to, so a name that resolves there (DNS rebinding) is
 * refused too.
 */
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 3],
] as const)
  PRIVATE.addSubnet(net, bits, "ipv4");
for (const [net, bits] of [
  ["::", 127],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
  ["64:ff9b::", 96],
  ["2002::", 16],
] as const)
  PRIVATE.addSubnet(net, bits, "ipv6");

export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1]!, "ipv4");
  const family = isIP(address);
  if (family === 0) return true;
  return PRIVATE.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** `host` as compared: lower case, no trailing dot, no IPv6 brackets. */
function normalHost(host: string): string {
  return host
    .toLowerCase()
    .replace(/\.$/, "")
    .replace(/^\[(.*)\]$/, "$1");
}

/** Whether an allow-list entry (`host`, `*.domain`, `host:port`) admits host:port. */
export function hostAllowed(allow: readonly string[], host: string, port: number): boolean {
  const h = normalHost(host);
  return allow.some((entry) => {
    const m = /^(.*?)(?::(\d+))?$/.exec(entry.toLowerCase())!;
    const pattern = m[1]!;
    const ok = m[2] ? port === Number(m[2]) : port === 80 || port === 443;
    if (!ok) return false;
    if (pattern.startsWith("*.")) return h.endsWith(pattern.slice(1)) && h.length > pattern.length - 1;
    return h === pattern;
  });
}

class Refused extends Error {}

export interface EgressOptions {
  /** Allowed hosts (the defaults are added); null: open (the proxy is only the broker's way in). */
  allow: string[] | null;
  /** Names resolved to fixed addresses, exempt from the private-address rule (tests only). */
  pin?: Record<string, string>;
  /** Whether the agent has no other way out (a closed network namespace). */
  enforced: boolean;
  broker: ModelBroker;
  log: Logger;
}

const MAX_RECENT = 10;

/**
 * The one way out of a closed sandbox: an HTTP proxy (CONNECT tunnels and
 * absolute-URL plain HTTP) that lets through only allowed hosts, on public
 * addresses, plus the model broker under `/model/`. The agent must present
 * the per-sandbox token as its proxy password (`http://alpine:<token>@…` in
 * its proxy variables): without a namespace around it (isolation none, a
 * container) the proxy is on the host's loopback, where anything could use it.
 */
export class EgressProxy {
  readonly server: Server;
  allowed = 0;
  refused = 0;
  private readonly recent: string[] = [];
  private readonly allow: string[] | null;
  private readonly proxyAuth: string;

  constructor(private readonly o: EgressOptions) {
    this.allow = o.allow ? [...DEFAULT_EGRESS_HOSTS, ...o.broker.hosts, ...o.allow] : null;
    this.proxyAuth = `Basic ${Buffer.from(`alpine:${o.broker.token}`).toString("base64")}`;
    this.server = createServer((req, res) => this.onRequest(req, res));
    this.server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onConnect(req, socket as Socket, head),
    );
    // A client that vanishes mid-request must not take sandboxd down.
    this.server.on("clientError", (_err, socket) => socket.destroy());
  }

  /** Lets the agent reach `host` too (the repo's git host, known at init). */
  addHost(host: string): void {
    if (this.allow && !this.allow.includes(host)) this.allow.push(host);
  }

  /** Listens on a unix socket (bridged into a namespace) or on 127.0.0.1 (port 0: a free one). */
  listen(where: { path: string } | { port: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      const done = () => {
        this.server.off("error", reject);
        resolve();
      };
      if ("path" in where) this.server.listen(where.path, done);
      else this.server.listen(where.port, "127.0.0.1", done);
    });
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === "object" && a ? a.port : 0;
  }

  close(): void {
    this.server.close();
    this.server.closeAllConnections();
  }

  status(): EgressStatus {
    return {
      policy: this.allow ? "allow" : "open",
      enforced: this.allow !== null && this.o.enforced,
      allowed: this.allowed,
      refused: this.refused,
      refused_hosts: [...this.recent],
    };
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? "/";
    if (url.startsWith("/model/")) {
      this.o.broker.handle(req, res, url.slice("/model".length));
      return;
    }
    if (!/^http:\/\//i.test(url)) {
      refuse(res, 400, "not a proxy request");
      return;
    }
    if (req.headers["proxy-authorization"] !== this.proxyAuth) {
      refuse(res, 407, "proxy authentication required");
      return;
    }
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      refuse(res, 400, "not a URL");
      return;
    }
    const port = Number(target.port || 80);
    this.resolve(target.hostname, port).then(
      (address) => {
        const headers = { ...req.headers };
        delete headers["proxy-authorization"];
        delete headers["proxy-connection"];
        const out = httpRequest(
          { host: address, port, path: `${target.pathname}${target.search}`, method: req.method, headers },
          (up) => {
            res.writeHead(up.statusCode ?? 502, up.headers);
            up.pipe(res);
          },
        );
        out.on("error", () =>
          res.headersSent ? res.destroy() : refuse(res, 502, "the host did not answer"),
        );
        req.pipe(out);
      },
      (err: Error) => this.refusedHttp(res, target.hostname, port, err),
    );
  }

  private onConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    if (req.headers["proxy-authorization"] !== this.proxyAuth) {
      socket.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="alpine"\r\n\r\n',
      );
      return;
    }
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(req.url ?? "");
    if (!m) {
      socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
      return;
    }
    const host = normalHost(m[1]!);
    const port = Number(m[2]);
    this.resolve(host, port).then(
      (address) => {
        const up = connect(port, address, () => {
          socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
          if (head.length) up.write(head);
          up.pipe(socket);
          socket.pipe(up);
        });
        up.on("error", () => {
          if (!socket.writableEnded) socket.end("HTTP/1.1 502 Bad Gateway\r\n\r\n");
        });
        socket.on("close", () => up.destroy());
        up.on("close", () => socket.destroy());
      },
      (err: Error) => {
        if (!(err instanceof Refused)) {
          socket.end("HTTP/1.1 502 Bad Gateway\r\n\r\n");
          return;
        }
        socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nalpine: ${err.message}\n`);
      },
    );
  }

  private refusedHttp(res: ServerResponse, host: string, port: number, err: Error): void {
    if (err instanceof Refused) refuse(res, 403, err.message);
    else refuse(res, 502, `cannot resolve ${host}:${port}`);
  }

  /**
   * The address to connect to for an allowed host:port; throws Refused (logged
   * and counted) for a host outside the policy or one that resolves to a
   * private address.
   */
  private async resolve(host: string, port: number): Promise<string> {
    const h = normalHost(host);
    const pinned = this.o.pin?.[h];
    try {
      if (this.allow && !hostAllowed(this.allow, h, port))
        throw new Refused(`${h}:${port} is not in this sandbox's egress allow-list (sandbox.egress)`);
      if (pinned) {
        this.allowed++;
        return pinned;
      }
      const addresses = isIP(h) ? [{ address: h }] : await lookup(h, { all: true, verbatim: true });
      const bad = addresses.find((a) => isPrivateAddress(a.address));
      if (bad || addresses.length === 0)
        throw new Refused(
          `${h} resolves to a loopback, private or link-local address (${bad?.address ?? "none"})`,
        );
      this.allowed++;
      return addresses[0]!.address;
    } catch (err) {
      if (err instanceof Refused) {
        this.refused++;
        const what = `${h}:${port}`;
        const i = this.recent.indexOf(what);
        if (i >= 0) this.recent.splice(i, 1);
        this.recent.push(what);
        if (this.recent.length > MAX_RECENT) this.recent.shift();
        this.o.log.warn("egress refused", { host: h, port, reason: err.message });
      }
      throw err;
    }
  }
}
