import { AlpineError, allowListOf, isAdminEmail, signInDecision } from "@alpine/core";
import { createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from "jose";
import { openJson, randomId, safeEqual, sealJson, sha256Hex } from "./crypto.ts";
import type { Env } from "./env.ts";

/**
 * Who is calling the control plane (docs/cloudflare.md, "People and roles"), from, in order:
 * a Cloudflare Access JWT (when Access is configured), the shared admin token, a CLI token of
 * `alpine login`, or the browser's session cookie of the GitHub sign-in. Sessions and CLI tokens
 * are random values handed out once; the registry keeps only their SHA-256 (registry.ts).
 */
export interface Principal {
  /** `github:<login>`, `access:<email>`, or `admin` (the shared token). */
  id: string;
  login: string;
  admin: boolean;
  via: "token" | "session" | "cli" | "access" | "github-app";
}

/** The request header a sandbox's Durable Object reads its caller from (set by the Worker only). */
export const PRINCIPAL_HEADER = "x-alpine-principal";
/** The browser's session cookie (HttpOnly; never forwarded to a sandbox). */
export const SESSION_COOKIE = "alpine_session";
/** The OAuth web flow's `state`, bound to the browser that started it. */
export const OAUTH_STATE_COOKIE = "alpine_oauth_state";
/** CLI tokens start with this, so a bearer token that is not the shared one is looked up. */
export const CLI_TOKEN_PREFIX = "acp_";

export const WEB_SESSION_SECONDS = 12 * 3600;
export const CLI_TOKEN_SECONDS = 24 * 3600;

export const ADMIN_PRINCIPAL: Principal = { id: "admin", login: "admin", admin: true, via: "token" };

export function githubOAuthUrl(env: Env): string {
  return (env.GITHUB_OAUTH_URL || "https://github.com").replace(/\/+$/, "");
}

export function githubApiUrl(env: Env): string {
  return (env.GITHUB_API_URL || "https://api.github.com").replace(/\/+$/, "");
}

/** The principal a stored session stands for, with its admin flag as the Worker's variables say now. */
function current(env: Env, stored: Principal, via: Principal["via"]): Principal {
  const list = allowListOf(env);
  const admin = stored.id.startsWith("access:")
    ? isAdminEmail(list, stored.login)
    : list.admins.includes(stored.login.toLowerCase());
  return { ...stored, admin, via };
}

// ---------- Cloudflare Access ----------

const jwksCache = new Map<string, JWTVerifyGetKey>();

/** The team's origin: `ACCESS_TEAM_DOMAIN` is `<team>.cloudflareaccess.com` or a full URL (tests). */
function accessIssuer(teamDomain: string): string {
  const withScheme = /^https?:\/\//.test(teamDomain) ? teamDomain : `https://${teamDomain}`;
  return new URL(withScheme).origin;
}

/** Verifies Access's `Cf-Access-Jwt-Assertion` (RS256, the team's keys, audience and issuer, expiry). */
export async function accessPrincipal(env: Env, assertion: string): Promise<Principal> {
  const issuer = accessIssuer(env.ACCESS_TEAM_DOMAIN ?? "");
  let jwks = jwksCache.get(issuer);
  if (!jwks) {
    jwks = createRemoteJWKSet(new URL(`${issuer}/cdn-cgi/access/certs`));
    jwksCache.set(issuer, jwks);
  }
  try {
    const { payload } = await jwtVerify(assertion, jwks, {
      issuer,
      audience: env.ACCESS_AUD,
      algorithms: ["RS256"],
    });
    const email = typeof payload.email === "string" ? payload.email.toLowerCase() : "";
    if (!email) throw new Error("the token names no email");
    return current(env, { id: `access:${email}`, login: email, admin: false, via: "access" }, "access");
  } catch (err) {
    throw new AlpineError("unauthorized", "the Cloudflare Access token is not valid", {
      cause: err instanceof Error ? err.name : "invalid",
    });
  }
}

// ---------- who is calling ----------

function cookieOf(request: Request, name: string): string | null {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=") || null;
  }
  return null;
}

/**
 * The caller of a request, or null when it carries no credential at all. A credential that is
 * present but wrong, expired or revoked is `unauthorized` (never silently anonymous).
 */
export async function authenticate(env: Env, request: Request): Promise<Principal | null> {
  const assertion = request.headers.get("cf-access-jwt-assertion");
  if (assertion && env.ACCESS_TEAM_DOMAIN && env.ACCESS_AUD) return accessPrincipal(env, assertion);

  const authorization = request.headers.get("authorization");
  if (authorization) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    const token = m?.[1] ?? "";
    const shared = env.ALPINE_CONTROL_PLANE_TOKEN;
    if (!shared || shared.length < 16) {
      throw new AlpineError(
        "control_plane_error",
        "the control plane has no ALPINE_CONTROL_PLANE_TOKEN secret (at least 16 characters)",
      );
    }
    if (m && (await safeEqual(token, shared))) return ADMIN_PRINCIPAL;
    if (m && token.startsWith(CLI_TOKEN_PREFIX)) {
      const hash = await sha256Hex(token);
      const stored = await registry(env).liveSession(hash, "cli");
      if (stored) return current(env, await stillAllowed(env, hash, stored), "cli");
    }
    throw new AlpineError("unauthorized", "missing or wrong control-plane token", {});
  }

  const session = cookieOf(request, SESSION_COOKIE);
  if (session) {
    const hash = await sha256Hex(session);
    const stored = await registry(env).liveSession(hash, "web");
    if (stored) return current(env, await stillAllowed(env, hash, stored), "session");
    throw new AlpineError("unauthorized", "the session has expired or was signed out", {});
  }
  return null;
}

/** `authenticate`, refusing a request without any credential (every /v1 route). */
export async function requirePrincipal(env: Env, request: Request): Promise<Principal> {
  const principal = await authenticate(env, request);
  if (!principal) throw new AlpineError("unauthorized", "missing or wrong control-plane token", {});
  return principal;
}

/** A principal id from what an admin typed: a GitHub login (`alice`) or an id (`github:alice`). */
export function principalIdOf(user: string): string {
  const trimmed = user.trim();
  if (/^(github|access):/i.test(trimmed)) return trimmed.toLowerCase();
  return `github:${trimmed.replace(/^@/, "").toLowerCase()}`;
}

/** The principal a sandbox's object was sent by the Worker, or null (the header is the Worker's alone). */
export function principalOf(request: Request): Principal | null {
  const raw = request.headers.get(PRINCIPAL_HEADER);
  if (!raw) return null;
  try {
    const p = JSON.parse(raw) as Principal;
    return typeof p.id === "string" && typeof p.admin === "boolean" ? p : null;
  } catch {
    // Only the Worker sets it; something unreadable is no principal.
    return null;
  }
}

function registry(env: Env) {
  return env.REGISTRY.getByName("registry");
}

// ---------- sessions ----------

/**
 * How long a session's org membership is trusted before it is asked of GitHub again: someone
 * removed from a listed org loses access within this, not at the session's expiry.
 */
export const MEMBERSHIP_RECHECK_MS = 10 * 60_000;

/** The sealed GitHub token's purpose (crypto.ts): kept only to re-check org membership. */
const GITHUB_TOKEN_PURPOSE = "session-github-token";

/** A listed org the GitHub token's user belongs to, or null; `unreachable` when GitHub did not say. */
async function listedOrgOf(env: Env, githubToken: string): Promise<string | null | "unreachable"> {
  let res: Response;
  try {
    res = await fetch(`${githubApiUrl(env)}/user/orgs?per_page=100`, {
      headers: {
        authorization: `Bearer ${githubToken}`,
        accept: "application/vnd.github+json",
        "user-agent": "alpine-control-plane",
      },
    });
  } catch {
    return "unreachable";
  }
  // A token the user revoked (or an OAuth app uninstalled from the org) is no membership.
  if (res.status === 401 || res.status === 403) return null;
  if (!res.ok) return "unreachable";
  const orgs = ((await res.json()) as { login?: string }[]).map((o) => (o.login ?? "").toLowerCase());
  return allowListOf(env).orgs.find((o) => orgs.includes(o)) ?? null;
}

/**
 * Is the person behind a stored session still on the allow-list? Admins and listed users are
 * read from the Worker's variables at every request; an org member's membership is asked of
 * GitHub (with their sealed token) once MEMBERSHIP_RECHECK_MS has passed since it was last
 * confirmed. Someone no longer listed has the session revoked at once (audited as
 * `session_revoked` by `system:allow-list`) and the request is `forbidden`. GitHub not answering
 * refuses the request (`control_plane_error`) but keeps the session: the next request asks again.
 */
async function stillAllowed(
  env: Env,
  hash: string,
  stored: { principal: Principal; checkedAt: string | null; githubSealed: string | null },
): Promise<Principal> {
  const { principal } = stored;
  // Cloudflare Access decides for its own principals; sessions are GitHub's.
  if (!principal.id.startsWith("github:")) return principal;
  const list = allowListOf(env);
  const login = principal.login.toLowerCase();
  if (list.admins.includes(login) || list.users.includes(login)) return principal;
  const now = Date.now();
  if (list.orgs.length && stored.githubSealed) {
    if (stored.checkedAt && now - Date.parse(stored.checkedAt) < MEMBERSHIP_RECHECK_MS) return principal;
    const githubToken = await openJson<string>(
      env.ALPINE_CONTROL_PLANE_TOKEN,
      GITHUB_TOKEN_PURPOSE,
      stored.githubSealed,
    );
    const org = await listedOrgOf(env, githubToken);
    if (org === "unreachable") {
      throw new AlpineError(
        "control_plane_error",
        "GitHub did not answer the allow-list's membership re-check; try again",
        {},
      );
    }
    if (org) {
      await registry(env).markChecked(hash, new Date(now).toISOString());
      return principal;
    }
  }
  await registry(env).revokeSessionsWhere({ principal: principal.id });
  await auditLine(env, {
    principal: "system:allow-list",
    action: "session_revoked",
    sandbox: null,
    outcome: "not_listed",
    subject: principal.id,
  });
  throw new AlpineError(
    "forbidden",
    `GitHub user '${principal.login}' is no longer on this control plane's allow-list; sign in again if that changes`,
    { login: principal.login },
  );
}

/** A new session (web) or CLI token: the value goes to the caller once; only its hash is kept. */
export async function startSession(
  env: Env,
  principal: Principal,
  kind: "web" | "cli",
  githubToken: string | null = null,
): Promise<{ token: string; expiresAt: string; maxAge: number }> {
  const token = (kind === "cli" ? CLI_TOKEN_PREFIX : "") + randomId(32);
  const maxAge = kind === "cli" ? CLI_TOKEN_SECONDS : WEB_SESSION_SECONDS;
  const expiresAt = new Date(Date.now() + maxAge * 1000).toISOString();
  // Someone let in by an org only: their GitHub token is kept, sealed, for the membership re-check
  // (stillAllowed); admins and listed users are re-checked from the Worker's variables alone.
  const list = allowListOf(env);
  const login = principal.login.toLowerCase();
  const byOrg = !list.admins.includes(login) && !list.users.includes(login);
  const githubSealed =
    githubToken && byOrg
      ? await sealJson(env.ALPINE_CONTROL_PLANE_TOKEN, GITHUB_TOKEN_PURPOSE, githubToken)
      : null;
  await registry(env).createSession(await sha256Hex(token), kind, principal, expiresAt, githubSealed);
  return { token, expiresAt, maxAge };
}

/** Revokes the session or CLI token a request carries (sign-out); true when one was live. */
export async function endSession(env: Env, request: Request): Promise<boolean> {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("authorization") ?? "");
  const token = m?.[1]?.startsWith(CLI_TOKEN_PREFIX) ? m[1] : cookieOf(request, SESSION_COOKIE);
  if (!token) return false;
  return registry(env).revokeSession(await sha256Hex(token));
}

export function sessionCookie(request: Request, token: string, maxAge: number): string {
  const secure = new URL(request.url).protocol === "https:" ? "; Secure" : "";
  return `${SESSION_COOKIE}=${token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=${maxAge}${secure}`;
}

export function clearedSessionCookie(request: Request): string {
  const secure = new URL(request.url).protocol === "https:" ? "; Secure" : "";
  return `${SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0${secure}`;
}

// ---------- GitHub ----------

/** The OAuth app; the device flow needs only its id, the web flow its secret too. */
function githubClient(env: Env, withSecret = false): { id: string; secret: string } {
  if (!env.GITHUB_CLIENT_ID || (withSecret && !env.GITHUB_CLIENT_SECRET)) {
    throw new AlpineError(
      "control_plane_error",
      "GitHub sign-in is not set up: the Worker needs GITHUB_CLIENT_ID and the secret GITHUB_CLIENT_SECRET",
    );
  }
  return { id: env.GITHUB_CLIENT_ID, secret: env.GITHUB_CLIENT_SECRET ?? "" };
}

async function githubJson(url: string, init: RequestInit): Promise<Record<string, unknown>> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = {};
  try {
    body = JSON.parse(text);
  } catch {
    // GitHub answers JSON when asked; anything else is reported by status below.
  }
  if (!res.ok && res.status !== 400) {
    throw new AlpineError("control_plane_error", `GitHub answered ${res.status} to ${new URL(url).pathname}`);
  }
  return (body ?? {}) as Record<string, unknown>;
}

/** Trades a GitHub user token for the principal it belongs to, if the allow-list lets it in. The token is not kept. */
export async function principalOfGithubToken(env: Env, githubToken: string, via: Principal["via"]) {
  const headers = {
    authorization: `Bearer ${githubToken}`,
    accept: "application/vnd.github+json",
    "user-agent": "alpine-control-plane",
  };
  const user = await githubJson(`${githubApiUrl(env)}/user`, { headers });
  const login = typeof user.login === "string" ? user.login : "";
  if (!login) throw new AlpineError("unauthorized", "GitHub did not say who signed in", {});
  const orgsRes = await fetch(`${githubApiUrl(env)}/user/orgs?per_page=100`, { headers });
  const orgs = orgsRes.ok
    ? ((await orgsRes.json()) as { login?: string }[]).map((o) => o.login ?? "").filter(Boolean)
    : [];
  const decision = signInDecision(allowListOf(env), login, orgs);
  if (!decision.allowed) {
    throw new AlpineError("forbidden", `GitHub user '${login}' is not on this control plane's allow-list`, {
      login,
    });
  }
  const principal: Principal = { id: `github:${login.toLowerCase()}`, login, admin: decision.admin, via };
  return principal;
}

/** The authorize URL of the web flow, for `state`. */
export function githubAuthorizeUrl(env: Env, redirectUri: string, state: string): string {
  const q = new URLSearchParams({
    client_id: githubClient(env).id,
    redirect_uri: redirectUri,
    state,
    scope: "read:org",
    allow_signup: "false",
  });
  return `${githubOAuthUrl(env)}/login/oauth/authorize?${q}`;
}

/** The web flow's code traded for a GitHub token (used once, to learn who signed in). */
export async function exchangeGithubCode(env: Env, code: string, redirectUri: string): Promise<string> {
  const client = githubClient(env, true);
  const body = await githubJson(`${githubOAuthUrl(env)}/login/oauth/access_token`, {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/json" },
    body: JSON.stringify({
      client_id: client.id,
      client_secret: client.secret,
      code,
      redirect_uri: redirectUri,
    }),
  });
  if (typeof body.access_token !== "string") {
    throw new AlpineError(
      "unauthorized",
      `GitHub refused the sign-in: ${String(body.error ?? "no token")}`,
      {},
    );
  }
  return body.access_token;
}

/** The device flow's first step: a code for the user to enter at GitHub. */
export async function startDeviceFlow(env: Env): Promise<Record<string, unknown>> {
  const body = await githubJson(`${githubOAuthUrl(env)}/login/device/code`, {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/json" },
    body: JSON.stringify({ client_id: githubClient(env).id, scope: "read:org" }),
  });
  if (typeof body.device_code !== "string") {
    throw new AlpineError("control_plane_error", "GitHub did not start the device flow", {
      error: String(body.error ?? ""),
    });
  }
  return {
    device_code: body.device_code,
    user_code: body.user_code,
    verification_uri: body.verification_uri,
    interval: body.interval ?? 5,
    expires_in: body.expires_in ?? 900,
  };
}

/** One poll of the device flow: the GitHub token once the user approved, or what to do next. */
export async function pollDeviceFlow(
  env: Env,
  deviceCode: string,
): Promise<{ token: string } | { pending: "authorization_pending" | "slow_down" }> {
  const body = await githubJson(`${githubOAuthUrl(env)}/login/oauth/access_token`, {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/json" },
    body: JSON.stringify({
      client_id: githubClient(env).id,
      device_code: deviceCode,
      grant_type: "urn:ietf:params:oauth:grant-type:device_code",
    }),
  });
  if (typeof body.access_token === "string") return { token: body.access_token };
  if (body.error === "authorization_pending" || body.error === "slow_down") return { pending: body.error };
  throw new AlpineError("unauthorized", `GitHub ended the sign-in: ${String(body.error ?? "no token")}`, {});
}

/** A fresh `state` for the web flow, and its check in constant time. */
export const newOAuthState = () => randomId(24);
export const sameState = (a: string, b: string) => safeEqual(a, b);

// ---------- audit ----------

/** Appends one line to the audit log; a failure is logged, never the caller's failure. */
export async function auditLine(
  env: Env,
  line: { principal: string; action: string; sandbox: string | null; outcome: string; subject?: string },
): Promise<void> {
  try {
    await env.REGISTRY.getByName("registry").audit({ at: new Date().toISOString(), ...line });
  } catch (err) {
    console.error("alpine: the audit log did not take an entry", { ...line, error: String(err) });
  }
}
