import { AlpineError } from "@alpine/core/errors";

/**
 * Acting on GitHub as a GitHub App (docs/cloudflare.md, "Setting up the GitHub App"): the Worker
 * holds the App's id and private key; for each installation it signs an App JWT (RS256,
 * WebCrypto), exchanges it at `POST /app/installations/<id>/access_tokens` for an installation
 * token, and keeps that token in this isolate's memory until shortly before its `expires_at`.
 * Tokens are never written anywhere (storage, logs, comments): a new isolate asks again.
 */

/** The Worker's bindings of the App (env.ts). */
export interface GithubAppEnv {
  /** The App's id (GitHub → the App's settings → "App ID"). */
  GITHUB_APP_ID?: string;
  /** The App's private key, PEM: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub issues) or PKCS#8. */
  GITHUB_APP_PRIVATE_KEY?: string;
  GITHUB_API_URL?: string;
}

/** An App JWT is valid for at most 10 minutes (GitHub's rule); iat is set 60 s back for clock drift. */
const JWT_BACKDATE_S = 60;
const JWT_LIFETIME_S = 540;
/** A cached installation token is not handed out in its last 5 minutes (a push may take a while). */
export const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;

// ---------- the private key ----------

function base64ToBytes(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function base64url(bytes: Uint8Array | string): string {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  let bin = "";
  for (const b of data) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A DER length: short form below 128, else 0x80|n followed by n big-endian bytes. */
function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

function derTlv(tag: number, body: Uint8Array): Uint8Array<ArrayBuffer> {
  const len = derLength(body.length);
  const out = new Uint8Array(1 + len.length + body.length);
  out[0] = tag;
  out.set(len, 1);
  out.set(body, 1 + len.length);
  return out;
}

/** version 0 and AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL } of a PrivateKeyInfo. */
const PKCS8_RSA_PREFIX = [
  0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/**
 * The PKCS#8 DER of a PEM private key. GitHub issues PKCS#1 (`BEGIN RSA PRIVATE KEY`), which
 * WebCrypto cannot import; it is wrapped here as PKCS#8's PrivateKeyInfo (RFC 5208: version 0,
 * the rsaEncryption algorithm, the PKCS#1 key as an OCTET STRING) — the same bytes
 * `openssl pkcs8 -topk8 -nocrypt` writes. A PKCS#8 PEM is taken as it is.
 */
export function privateKeyPkcs8(pem: string): Uint8Array<ArrayBuffer> {
  const m = /-----BEGIN (RSA )?PRIVATE KEY-----([\s\S]*?)-----END \1?PRIVATE KEY-----/.exec(
    // A secret pasted through a one-line field often has its newlines as `\n`.
    pem.replace(/\\n/g, "\n"),
  );
  if (!m) {
    throw new AlpineError(
      "config_invalid",
      "GITHUB_APP_PRIVATE_KEY is not a PEM private key (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY); an encrypted key must be decrypted first",
      { key: "GITHUB_APP_PRIVATE_KEY" },
    );
  }
  let der: Uint8Array<ArrayBuffer>;
  try {
    der = base64ToBytes(m[2]!.replace(/\s+/g, ""));
  } catch {
    throw new AlpineError("config_invalid", "GITHUB_APP_PRIVATE_KEY's PEM body is not base64", {
      key: "GITHUB_APP_PRIVATE_KEY",
    });
  }
  if (!m[1]) return der;
  const body = new Uint8Array([...PKCS8_RSA_PREFIX, ...derTlv(0x04, der)]);
  return derTlv(0x30, body);
}

const keys = new Map<string, Promise<CryptoKey>>();

function signingKey(pem: string): Promise<CryptoKey> {
  let key = keys.get(pem);
  if (!key) {
    key = (async () => {
      try {
        return await crypto.subtle.importKey(
          "pkcs8",
          privateKeyPkcs8(pem),
          { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
          false,
          ["sign"],
        );
      } catch (err) {
        if (err instanceof AlpineError) throw err;
        throw new AlpineError(
          "config_invalid",
          `GITHUB_APP_PRIVATE_KEY is not an RSA private key: ${String(err)}`,
          {
            key: "GITHUB_APP_PRIVATE_KEY",
          },
        );
      }
    })();
    keys.set(pem, key);
    // A key that fails to import is not kept: a fixed secret is tried again.
    key.catch(() => keys.delete(pem));
  }
  return key;
}

// ---------- the App JWT ----------

/** The App's JWT (RS256; `iss` the App id, `iat` 60 s back, `exp` 9 min ahead: 10 min in all). */
export async function appJwt(appId: string, pem: string, nowMs = Date.now()): Promise<string> {
  const now = Math.floor(nowMs / 1000);
  const header = base64url(JSON.stringify({ alg: "RS256", typ: "JWT" }));
  const payload = base64url(
    JSON.stringify({ iat: now - JWT_BACKDATE_S, exp: now + JWT_LIFETIME_S, iss: appId }),
  );
  const input = `${header}.${payload}`;
  const sig = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    await signingKey(pem),
    new TextEncoder().encode(input),
  );
  return `${input}.${base64url(new Uint8Array(sig))}`;
}

// ---------- installation tokens ----------

interface Cached {
  token: string;
  expiresAt: number;
}

/** Per isolate: `<api>|<app id>|<installation id>` → the token and when it expires. */
const tokens = new Map<string, Cached>();
/** Exchanges under way, so concurrent callers of one installation share one. */
const pending = new Map<string, Promise<Cached>>();

/** Whether the deployment has a GitHub App (its id and private key). */
export function hasGithubApp(env: GithubAppEnv): boolean {
  return Boolean(env.GITHUB_APP_ID && env.GITHUB_APP_PRIVATE_KEY);
}

/**
 * An installation token for `installationId`: the cached one while it has more than
 * TOKEN_REFRESH_MARGIN_MS left, else a new one from GitHub. `now` is the cache's clock (tests move
 * it on to a token's expiry); the JWT is always dated by the real clock, which GitHub checks.
 */
export async function installationToken(
  env: GithubAppEnv,
  installationId: number,
  now: () => number = Date.now,
): Promise<string> {
  const appId = env.GITHUB_APP_ID;
  const pem = env.GITHUB_APP_PRIVATE_KEY;
  if (!appId || !pem) {
    throw new AlpineError(
      "github_auth_missing",
      "the control plane has no GitHub App: set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY",
      {},
    );
  }
  if (!Number.isSafeInteger(installationId) || installationId <= 0) {
    throw new AlpineError(
      "github_auth_missing",
      "the webhook named no App installation (installation.id): is the App installed on this repository?",
      {},
    );
  }
  const api = (env.GITHUB_API_URL || "https://api.github.com").replace(/\/+$/, "");
  const key = `${api}|${appId}|${installationId}`;
  const cached = tokens.get(key);
  if (cached && cached.expiresAt - now() > TOKEN_REFRESH_MARGIN_MS) return cached.token;
  let exchange = pending.get(key);
  if (!exchange) {
    exchange = exchangeToken(api, appId, pem, installationId);
    pending.set(key, exchange);
  }
  try {
    const fresh = await exchange;
    tokens.set(key, fresh);
    return fresh.token;
  } finally {
    pending.delete(key);
  }
}

async function exchangeToken(
  api: string,
  appId: string,
  pem: string,
  installationId: number,
): Promise<Cached> {
  const jwt = await appJwt(appId, pem);
  const path = `/app/installations/${installationId}/access_tokens`;
  const res = await fetch(`${api}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${jwt}`,
      accept: "application/vnd.github+json",
      "user-agent": "alpine",
    },
    signal: AbortSignal.timeout(30_000),
  });
  // A body that is not JSON still has its status, which decides below.
  const value = (await res.json().catch(() => ({}))) as {
    token?: unknown;
    expires_at?: unknown;
    message?: unknown;
  };
  if (!res.ok) {
    throw new AlpineError(
      res.status === 401 || res.status === 403 || res.status === 404
        ? "github_auth_missing"
        : "control_plane_error",
      `GitHub refused the App's installation token (POST ${path}: ${res.status} ${String(value.message ?? "")})`,
      { status: res.status, installation_id: installationId },
    );
  }
  const expiresAt = Date.parse(String(value.expires_at ?? ""));
  if (typeof value.token !== "string" || !value.token || Number.isNaN(expiresAt)) {
    throw new AlpineError(
      "control_plane_error",
      `GitHub's answer to POST ${path} has no token or expires_at`,
      {
        installation_id: installationId,
      },
    );
  }
  return { token: value.token, expiresAt };
}

/** Forgets every cached token (tests). */
export function forgetInstallationTokens(): void {
  tokens.clear();
}
