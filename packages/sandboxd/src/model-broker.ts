import { randomBytes } from "node:crypto";
import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Logger } from "./log.ts";

/**
 * Where a built-in OpenCode provider sends its requests when its config names
 * no `baseURL` (the AI SDK's defaults). A provider not listed here and without
 * a `baseURL` in `opencode.config` cannot be brokered: its key goes to the
 * agent as before, with a warning in the log.
 */
const DEFAULT_UPSTREAMS: Record<string, string> = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com/v1",
  openrouter: "https://openrouter.ai/api/v1",
  groq: "https://api.groq.com/openai/v1",
  mistral: "https://api.mistral.ai/v1",
  deepseek: "https://api.deepseek.com/v1",
  xai: "https://api.x.ai/v1",
  google: "https://generativelanguage.googleapis.com/v1beta",
};

/** Headers a hop must not forward (RFC 9110 §7.6.1), plus the ones the broker sets itself. */
const HOP_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);

interface Upstream {
  url: URL;
  /** The real key; undefined until credentials arrive (a warm sandboxd before adoption). */
  key?: string;
  /**
   * Its credentials are not an API key (OAuth…), so OpenCode holds them:
   * left out of the rewritten config, and requests that still come (a warm
   * OpenCode configured before they arrived) are forwarded unchanged.
   */
  passThrough?: boolean;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The model broker: OpenCode's providers point at sandboxd (`<base>/model/<id>`)
 * and hold a per-sandbox token in place of their key; the broker checks the
 * token, puts the real key where the token was (whatever header the provider's
 * SDK uses: Authorization, x-api-key…) and forwards to that provider's real API
 * only. The token is new for every sandboxd process, so a resume rotates it and
 * one copied out of a sandbox (or its checkpoint) is useless elsewhere.
 */
export class ModelBroker {
  readonly token = randomBytes(24).toString("base64url");
  private readonly upstreams = new Map<string, Upstream>();
  /** Auth entries the broker cannot stand in for (OAuth…): OpenCode gets them as they are. */
  private passThrough: Json = {};
  /**
   * The model API is reached the way OpenCode reached it before the broker:
   * through the owner's HTTP(S)_PROXY (NO_PROXY honoured) when sandboxd was
   * given one (Node 24's proxyEnv), else directly.
   */
  private readonly agents = {
    http: new HttpAgent({ keepAlive: true, proxyEnv: process.env }),
    https: new HttpsAgent({ keepAlive: true, proxyEnv: process.env }),
  };

  constructor(
    private readonly log: Logger,
    providers: readonly string[],
    config: Json | undefined,
  ) {
    log.addSecret(this.token);
    const configured = isObject(config?.provider) ? config.provider : {};
    for (const id of new Set([...providers, ...Object.keys(configured)])) {
      const options =
        isObject(configured[id]) && isObject(configured[id].options) ? configured[id].options : {};
      const base = typeof options.baseURL === "string" ? options.baseURL : DEFAULT_UPSTREAMS[id];
      if (!base) {
        log.warn("no API address known for this model provider: its key cannot be kept from the agent", {
          provider: id,
        });
        continue;
      }
      let url: URL;
      try {
        url = new URL(base);
      } catch {
        log.warn("the provider's baseURL is not a URL; not brokered", { provider: id });
        continue;
      }
      const key = typeof options.apiKey === "string" ? options.apiKey : undefined;
      if (key) log.addSecret(key);
      this.upstreams.set(id, { url, key });
    }
  }

  /** The providers brokered, with their real API hosts (the egress defaults include them). */
  get hosts(): string[] {
    return [...this.upstreams.values()].map((u) => u.url.host);
  }

  /**
   * OpenCode's config with every brokered provider pointed at `base` (the
   * broker's address as the agent sees it) and its `apiKey`, if any, replaced
   * by the token.
   */
  opencodeConfig(config: Json, base: string): Json {
    const provider: Json = isObject(config.provider) ? { ...config.provider } : {};
    for (const [id, upstream] of this.upstreams) {
      if (upstream.passThrough) continue;
      const entry = isObject(provider[id]) ? provider[id] : {};
      const options = isObject(entry.options) ? entry.options : {};
      const apiKey = options.apiKey !== undefined ? { apiKey: this.token } : {};
      provider[id] = { ...entry, options: { ...options, ...apiKey, baseURL: `${base}/model/${id}` } };
    }
    return Object.keys(provider).length ? { ...config, provider } : config;
  }

  /**
   * Takes the real credentials (OpenCode's auth.json entries) and returns the
   * entries OpenCode gets instead: the token for every `api` key of a brokered
   * provider (and for a brokered provider without one, so it is ready when
   * credentials come), anything else unchanged.
   */
  setAuth(auth: Json): Json {
    const out: Json = { ...this.passThrough };
    for (const [id, entry] of Object.entries(auth)) {
      const upstream = this.upstreams.get(id);
      if (upstream && isObject(entry) && entry.type === "api" && typeof entry.key === "string") {
        upstream.key = entry.key;
        this.log.addSecret(entry.key);
        continue;
      }
      if (upstream) {
        upstream.passThrough = true;
        this.log.warn("this provider's credentials are not an API key: the agent holds them", {
          provider: id,
          type: isObject(entry) ? String(entry.type) : typeof entry,
        });
      }
      out[id] = entry;
      this.passThrough[id] = entry;
    }
    for (const [id, upstream] of this.upstreams) {
      if (!(id in out) && !upstream.passThrough) out[id] = { type: "api", key: this.token };
    }
    return out;
  }

  /** Serves `/model/<id>/<rest>`; `path` is the request's path without `/model`. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): void {
    const m = /^\/([^/?]+)(\/[^?]*)?(\?.*)?$/.exec(path);
    const upstream = m ? this.upstreams.get(decodeURIComponent(m[1]!)) : undefined;
    if (!m || !upstream) {
      refuse(res, 404, "no such model provider at this broker");
      return;
    }
    const headers = upstream.passThrough ? stripHop(req.headers) : this.swapToken(req.headers, upstream.key);
    if (!headers) {
      refuse(res, 401, "the sandbox's model token is missing or wrong");
      return;
    }
    const target = new URL(upstream.url.href);
    target.pathname = `${target.pathname.replace(/\/+$/, "")}${m[2] ?? ""}`;
    target.search = m[3] ?? "";
    const https = target.protocol === "https:";
    const send = https ? httpsRequest : httpRequest;
    const agent = https ? this.agents.https : this.agents.http;
    const out = send(target, { method: req.method, headers, agent }, (up) => {
      res.writeHead(up.statusCode ?? 502, stripHop(up.headers));
      up.pipe(res);
      up.on("error", () => res.destroy());
    });
    out.on("error", (err) => {
      this.log.warn("model broker: the provider's API did not answer", {
        host: target.host,
        error: err.message,
      });
      if (!res.headersSent) refuse(res, 502, "the model provider's API did not answer");
      else res.destroy();
    });
    req.pipe(out);
    res.on("close", () => out.destroy());
  }

  /**
   * The request's headers to forward, with the token replaced by the real key
   * wherever the provider's SDK put it; null when no header carries the token.
   */
  private swapToken(headers: IncomingHttpHeaders, key: string | undefined): Record<string, string> | null {
    const out: Record<string, string> = {};
    let found = false;
    for (const [name, raw] of Object.entries(headers)) {
      if (raw === undefined || HOP_HEADERS.has(name)) continue;
      let value = Array.isArray(raw) ? raw.join(", ") : raw;
      if (value.includes(this.token)) {
        found = true;
        value = key === undefined ? value.replace(this.token, "") : value.replace(this.token, key);
      }
      out[name] = value;
    }
    return found ? out : null;
  }
}

function stripHop(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_HEADERS.has(k)) out[k] = v;
  return out;
}

export function refuse(res: ServerResponse, status: number, message: string): void {
  const body = JSON.stringify({ error: { message: `alpine: ${message}`, type: "alpine_sandbox" } });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}
