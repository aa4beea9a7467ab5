import { createPrivateKey, verify } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  appJwt,
  forgetInstallationTokens,
  installationToken,
  privateKeyPkcs8,
  TOKEN_REFRESH_MARGIN_MS,
} from "../packages/worker/src/github-app.ts";
import {
  type GithubApp,
  type GithubStub,
  makeGithubApp,
  startGithubStub,
} from "./e2e/fixtures/github-api.ts";

/**
 * Acting as a GitHub App (packages/worker/src/github-app.ts) against the GitHub API stub, which
 * verifies the App JWT's RS256 signature under the App's public key and issues expiring
 * installation tokens: the JWT's form and claims, PKCS#1 → PKCS#8, the token cache (reuse, a new
 * exchange near expiry, one per installation, concurrent callers sharing one exchange), and the
 * stub refusing a JWT of another key and the old static token.
 */
const STATIC = "ghs_STATICTOKEN0123456789abcdef";
let app: GithubApp;
let gh: GithubStub;

beforeAll(async () => {
  app = makeGithubApp("4711");
  gh = await startGithubStub({ token: STATIC, app });
});
afterAll(() => gh.close());
beforeEach(() => {
  forgetInstallationTokens();
  gh.issued.length = 0;
  gh.refused.length = 0;
});

const env = (pem = app.privateKeyPkcs1) => ({
  GITHUB_APP_ID: app.id,
  GITHUB_APP_PRIVATE_KEY: pem,
  GITHUB_API_URL: gh.apiUrl,
});

const repoWith = (token: string) =>
  fetch(`${gh.apiUrl}/repos/acme/app`, { headers: { authorization: `Bearer ${token}` } });

describe("the App JWT", () => {
  it("a PKCS#1 key (as GitHub issues it) becomes the same PKCS#8 bytes openssl writes", () => {
    const want = createPrivateKey(app.privateKeyPkcs1).export({ type: "pkcs8", format: "der" });
    expect(Buffer.from(privateKeyPkcs8(app.privateKeyPkcs1))).toEqual(want);
    expect(Buffer.from(privateKeyPkcs8(app.privateKeyPkcs8))).toEqual(want);
    // Pasted through a one-line field: newlines as `\n`.
    expect(Buffer.from(privateKeyPkcs8(app.privateKeyPkcs1.replace(/\n/g, "\\n")))).toEqual(want);
  });

  it("is RS256, signed with the App's key, iss the App id, iat 60 s back, exp within 10 minutes", async () => {
    const now = Date.parse("2026-12-07T10:00:00Z");
    for (const pem of [app.privateKeyPkcs1, app.privateKeyPkcs8]) {
      const jwt = await appJwt(app.id, pem, now);
      const [h, p, sig] = jwt.split(".") as [string, string, string];
      expect(JSON.parse(Buffer.from(h, "base64url").toString())).toEqual({ alg: "RS256", typ: "JWT" });
      const claims = JSON.parse(Buffer.from(p, "base64url").toString());
      expect(claims).toEqual({ iss: app.id, iat: now / 1000 - 60, exp: now / 1000 + 540 });
      expect(claims.exp - claims.iat).toBeLessThanOrEqual(600);
      expect(
        verify("RSA-SHA256", Buffer.from(`${h}.${p}`), app.publicKey, Buffer.from(sig, "base64url")),
      ).toBe(true);
    }
  });

  it("a key that is not a PEM private key is a clear config error", async () => {
    await expect(appJwt(app.id, "not a key")).rejects.toMatchObject({ reason: "config_invalid" });
    await expect(
      appJwt(app.id, "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"),
    ).rejects.toMatchObject({ reason: "config_invalid" });
  });
});

describe("installation tokens", () => {
  it("are exchanged once and reused while they have time left; near expiry a new one is exchanged", async () => {
    const first = await installationToken(env(), 77);
    expect(gh.issued).toHaveLength(1);
    expect(gh.issued[0]).toMatchObject({ installation_id: 77, token: first });
    expect((await repoWith(first)).status).toBe(200);
    expect(await installationToken(env(), 77)).toBe(first);
    expect(gh.issued).toHaveLength(1);
    // Just before the margin: still the cached one.
    const expiresAt = gh.issued[0]!.expires_at;
    const justBefore = () => expiresAt - TOKEN_REFRESH_MARGIN_MS - 1000;
    expect(await installationToken(env(), 77, justBefore)).toBe(first);
    expect(gh.issued).toHaveLength(1);
    // Inside the margin: a new exchange, a new token.
    const inside = () => expiresAt - TOKEN_REFRESH_MARGIN_MS + 1000;
    const second = await installationToken(env(), 77, inside);
    expect(second).not.toBe(first);
    expect(gh.issued.map((t) => t.token)).toEqual([first, second]);
    // The new token is the cached one now (for the real clock: the stub dated it by that).
    expect(await installationToken(env(), 77)).toBe(second);
    expect(gh.issued).toHaveLength(2);
  });

  it("are per installation, and concurrent callers share one exchange", async () => {
    const [a, b, c] = await Promise.all([
      installationToken(env(), 1),
      installationToken(env(), 1),
      installationToken(env(), 2),
    ]);
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    expect(gh.issued.map((t) => t.installation_id).sort()).toEqual([1, 2]);
  });

  it("an expired token is refused by GitHub (the stub), so the cache must not hand one out", async () => {
    const short = await startGithubStub({ token: STATIC, app, tokenTtlMs: 300 });
    try {
      const e = { ...env(), GITHUB_API_URL: short.apiUrl };
      const token = await installationToken(e, 5);
      expect(
        (await fetch(`${short.apiUrl}/repos/a/b`, { headers: { authorization: `Bearer ${token}` } })).status,
      ).toBe(200);
      await new Promise((r) => setTimeout(r, 400));
      expect(
        (await fetch(`${short.apiUrl}/repos/a/b`, { headers: { authorization: `Bearer ${token}` } })).status,
      ).toBe(401);
      // Its lifetime is under the margin: every use exchanges a fresh one.
      expect(await installationToken(e, 5)).not.toBe(token);
      expect(short.issued).toHaveLength(2);
    } finally {
      await short.close();
    }
  });

  it("the stub refuses a JWT signed with another key, and the old static token", async () => {
    const other = makeGithubApp(app.id);
    await expect(installationToken(env(other.privateKeyPkcs1), 9)).rejects.toMatchObject({
      reason: "github_auth_missing",
    });
    expect(gh.refused).toEqual([{ installation_id: 9, why: "bad signature" }]);
    expect(gh.issued).toEqual([]);
    expect((await repoWith(STATIC)).status).toBe(401);
    // Another App's id with the right key is refused too.
    await expect(installationToken({ ...env(), GITHUB_APP_ID: "1" }, 9)).rejects.toMatchObject({
      reason: "github_auth_missing",
    });
    expect(gh.refused.at(-1)).toEqual({ installation_id: 9, why: "iss 1" });
  });

  it("without the App's secrets, or without an installation, there is no token", async () => {
    await expect(installationToken({ GITHUB_API_URL: gh.apiUrl }, 1)).rejects.toMatchObject({
      reason: "github_auth_missing",
    });
    await expect(installationToken(env(), 0)).rejects.toMatchObject({ reason: "github_auth_missing" });
    expect(gh.issued).toEqual([]);
  });
});
