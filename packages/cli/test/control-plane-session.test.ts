import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_CONFIG } from "@alpine/core";
import { describe, expect, it } from "vitest";
import { controlPlaneFrom } from "../src/remote/config.ts";
import { readSession, removeSession, sessionFile, writeSession } from "../src/remote/session.ts";

const URL_ = "https://cp.example.com";
const config = { ...DEFAULT_CONFIG, sandbox: { ...DEFAULT_CONFIG.sandbox, control_plane_url: URL_ } };
const principal = { id: "github:alice", login: "alice", admin: false, via: "cli" };
const home = () => mkdtempSync(join("/var/tmp", "alpine-cp-session-"));

describe("the CLI token of alpine login", () => {
  it("is stored 0600 in a 0700 directory, one file per control plane", () => {
    const h = home();
    const file = writeSession(h, {
      url: URL_,
      token: "acp_x",
      expires_at: "2999-01-01T00:00:00Z",
      principal,
    });
    expect(file).toBe(sessionFile(h, `${URL_}/`));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(h, "control-plane")).mode & 0o777).toBe(0o700);
    expect(sessionFile(h, "https://other.example.com")).not.toBe(file);
  });

  it("is used instead of the shared token while it lasts", () => {
    const h = home();
    const env = { ALPINE_HOME: h, ALPINE_CONTROL_PLANE_TOKEN: "shared-token-0123456789" };
    expect(controlPlaneFrom(config, env).token).toBe("shared-token-0123456789");
    writeSession(h, { url: URL_, token: "acp_alice", expires_at: "2999-01-01T00:00:00Z", principal });
    expect(controlPlaneFrom(config, env).token).toBe("acp_alice");
    // Expired: the shared token again; none at all: a clear error naming alpine login.
    writeSession(h, { url: URL_, token: "acp_old", expires_at: "2000-01-01T00:00:00Z", principal });
    expect(readSession(h, URL_)).toBeNull();
    expect(controlPlaneFrom(config, env).token).toBe("shared-token-0123456789");
    expect(() => controlPlaneFrom(config, { ALPINE_HOME: h })).toThrow(/alpine login/);
    removeSession(h, URL_);
    expect(readSession(h, URL_)).toBeNull();
  });

  it("a damaged file is no session", () => {
    const h = home();
    writeSession(h, { url: URL_, token: "acp_x", expires_at: "2999-01-01T00:00:00Z", principal });
    writeFileSync(sessionFile(h, URL_), "{not json");
    expect(readSession(h, URL_)).toBeNull();
  });
});
