import { spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CLI, runCli } from "../helpers/cli.ts";
import { type E2EEnv, makeEnv, waitFor } from "./env.ts";
import { type GithubOAuthStub, startGithubOAuthStub } from "./fixtures/github-oauth.ts";
import { providerUnderTest } from "./providers.ts";

/**
 * `alpine login` / `logout` against `alpine cloud dev`, signing in with GitHub's device flow at
 * the local stub (fixtures/github-oauth.ts): the CLI token is stored 0600 and used instead of the
 * shared token, `list --all` is refused to a non-admin, the audit log shows the sign-in, and
 * `alpine logout` revokes the token on the control plane.
 */
const p = providerUnderTest("cloudflare");
let e: E2EEnv;
let gh: GithubOAuthStub;
const outputs: string[] = [];

/** The environment of a person: no shared token, only what `alpine login` stored. */
const personal = () => ({ ...e.env, ALPINE_CONTROL_PLANE_TOKEN: "" });
const alpine = async (args: string[]) => {
  const r = await runCli(args, { env: personal(), cwd: e.cwd });
  outputs.push(r.stdout, r.stderr);
  return r;
};

/** Runs `alpine login --json`; when it prints the code, `login` enters it at GitHub (the stub). */
async function login(who: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, "login", "--json"], {
    cwd: e.cwd,
    env: { PATH: process.env.PATH, NO_COLOR: "1", ...personal() },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const userCode = await waitFor("the code to enter at GitHub", async () => {
    if (child.exitCode !== null) throw new Error(`alpine login exited: ${stderr}`);
    return /enter the code (\S+)/.exec(stderr)?.[1];
  });
  expect(stderr).toContain(`Open ${gh.url}/login/device`);
  const approve = await fetch(`${gh.url}/login/device`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_code: userCode, login: who }),
  });
  expect(approve.status).toBe(200);
  const code = await exited;
  outputs.push(stdout, stderr);
  return { code, stdout, stderr };
}

beforeAll(async () => {
  gh = await startGithubOAuthStub({ users: { alice: [], mallory: [] } });
  e = await makeEnv({ yaml: p.yaml });
  Object.assign(e.env, p.env);
  // The device flow needs only the app's id (the web flow's secret is covered in workerd tests).
  // cloud dev's start waits up to 120 s itself; on a loaded machine the hook needs more.
  await p
    .start?.(e, {
      vars: {
        GITHUB_CLIENT_ID: gh.clientId,
        GITHUB_OAUTH_URL: gh.url,
        GITHUB_API_URL: gh.url,
        ALPINE_ALLOWED_USERS: "alice",
        ALPINE_ADMINS: "carol",
      },
    })
    .catch((err) => {
      console.error(p.diagnostics?.());
      throw err;
    });
}, 240_000);

afterEach((ctx) => {
  if (ctx.task.result?.state === "fail") console.error(p.diagnostics?.());
});

afterAll(async () => {
  await p.stop?.();
  await gh.close();
  await e.close();
});

describe("alpine login / logout (GitHub device flow, Cloudflare control plane)", () => {
  let tokenFile = "";

  it("signs in, stores the CLI token 0600, prints it nowhere, and is used in place of the shared token", async () => {
    const r = await login("alice");
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.principal).toEqual({ id: "github:alice", login: "alice", admin: false, via: "cli" });
    tokenFile = out.token_file;
    expect(tokenFile.startsWith(e.alpineHome)).toBe(true);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = JSON.parse(readFileSync(tokenFile, "utf8")).token as string;
    expect(token).toMatch(/^acp_/);
    expect(r.stdout + r.stderr).not.toContain(token);

    const list = await alpine(["list", "--json"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.json()).toEqual([]);
    const all = await alpine(["list", "--all", "--json"]);
    expect(all.code).toBe(1);
    expect(all.json()).toMatchObject({ reason_code: "forbidden", exit_code: 1 });
  });

  it("logs --audit shows the sign-in and the refused list --all", async () => {
    const r = await alpine(["logs", "--audit", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ principal: "github:alice", action: "sign_in", outcome: "ok" }),
      ]),
    );
  });

  it("logout revokes the token on the control plane and forgets it", async () => {
    const token = JSON.parse(readFileSync(tokenFile, "utf8")).token as string;
    const r = await alpine(["logout", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ revoked: true });
    expect(existsSync(tokenFile)).toBe(false);
    // The token itself no longer works, even if someone kept a copy.
    const res = await fetch(`${e.env.ALPINE_SANDBOX_CONTROL_PLANE_URL}/v1/sandboxes`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(401);
    const list = await alpine(["list", "--json"]);
    expect(list.code).toBe(1);
    expect(list.json().reason_code).toBe("config_invalid");
  });

  it("someone not on the allow-list is refused (forbidden) and nothing is stored", async () => {
    const r = await login("mallory");
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ reason_code: "forbidden" });
    expect(existsSync(tokenFile)).toBe(false);
  });
});
