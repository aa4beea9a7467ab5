import { beforeEach, describe, expect, inject, it } from "vitest";
import {
  appJwt,
  forgetInstallationTokens,
  installationToken,
  TOKEN_REFRESH_MARGIN_MS,
} from "../src/github-app.ts";

/**
 * The GitHub App's flow inside workerd (github-app.ts): WebCrypto importing the App's key as
 * GitHub issues it (PKCS#1, wrapped as PKCS#8), the RS256 JWT, and the installation token cache
 * against the GitHub API stub of the global setup, which verifies the JWT under the App's public
 * key and issues a new random token per exchange (so a new token means a new exchange).
 * (workerd's importKey happens to take unwrapped PKCS#1 DER as "pkcs8" too — tried: these pass
 * without the wrap — while Node's and the spec's do not; test/github-app.test.ts holds the wrap.)
 */
const app = inject("githubApp");
const env = (key = app.key) => ({
  GITHUB_APP_ID: app.id,
  GITHUB_APP_PRIVATE_KEY: key,
  GITHUB_API_URL: inject("githubAppApi"),
});
const repoStatus = async (token: string) =>
  (await fetch(`${inject("githubAppApi")}/repos/acme/app`, { headers: { authorization: `Bearer ${token}` } }))
    .status;

beforeEach(() => forgetInstallationTokens());

describe("the GitHub App in workerd", () => {
  it("signs an RS256 JWT with the PKCS#1 key: iss the App id, iat 60 s back, exp 9 min ahead", async () => {
    const now = Date.parse("2026-12-07T10:00:00Z");
    const [h, p, sig] = (await appJwt(app.id, app.key, now)).split(".") as [string, string, string];
    const json = (part: string) => JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
    expect(json(h)).toEqual({ alg: "RS256", typ: "JWT" });
    expect(json(p)).toEqual({ iss: app.id, iat: now / 1000 - 60, exp: now / 1000 + 540 });
    expect(sig.length).toBeGreaterThan(300); // 256 bytes of RSA-2048 signature, base64url
  });

  it("exchanges a token the API takes, reuses it, and exchanges a new one near its expiry", async () => {
    const first = await installationToken(env(), 11);
    expect(first).toMatch(/^ghs_/);
    expect(await repoStatus(first)).toBe(200);
    expect(await installationToken(env(), 11)).toBe(first);
    // An hour's token, seen from a clock 56 minutes on: inside the refresh margin.
    const later = () => Date.now() + 3600_000 - TOKEN_REFRESH_MARGIN_MS + 60_000;
    const second = await installationToken(env(), 11, later);
    expect(second).not.toBe(first);
    expect(await repoStatus(second)).toBe(200);
    expect(await installationToken(env(), 11)).toBe(second);
    expect(await installationToken(env(), 12)).not.toBe(second);
  });

  it("a JWT signed with another key is refused by the stub, and so is the static token", async () => {
    await expect(installationToken(env(app.foreignKey), 13)).rejects.toMatchObject({
      reason: "github_auth_missing",
      message: expect.stringContaining("bad signature"),
    });
    expect(await repoStatus(app.staticToken)).toBe(401);
  });
});
