import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_CONFIG } from "@alpine/core";
import type { TestProject } from "vitest/node";
import { startGitServer } from "../../../test/e2e/fixtures/git-server.ts";
import { makeGithubApp, startGithubStub } from "../../../test/e2e/fixtures/github-api.ts";
import { startGithubOAuthStub } from "../../../test/e2e/fixtures/github-oauth.ts";
import { startStubModel, stubOpencodeConfig } from "../../../test/e2e/fixtures/stub-model.ts";
import { startWebhookReceiver } from "../../../test/e2e/fixtures/webhook-receiver.ts";
import { startContainerHost } from "../../cli/src/cloud/container-host.ts";
import type { Context } from "../../cli/src/context.ts";
import { LocalProvider } from "../../cli/src/providers/local.ts";

export const SECRETS = {
  controlPlane: "cp-TESTTOKEN-0123456789abcdefghij",
  gitPassword: "ghp_WORKERGITTOKEN0123456789",
  modelKey: "sk-WORKERMODELKEY0123456789",
};

declare module "vitest" {
  export interface ProvidedContext {
    controlPlaneToken: string;
    hostUrl: string;
    hostToken: string;
    repoUrl: string;
    gitUser: string;
    gitPassword: string;
    modelKey: string;
    opencodeConfig: Record<string, unknown>;
    model: string;
    /** A webhook receiver on 127.0.0.1 (notify.test.ts): `/fail/<n>/…` answers 500 n times. */
    webhookUrl: string;
    /** identity: the GitHub sign-in stub (github-oauth.ts) and Access JWTs it signed. */
    githubUrl: string;
    githubClientId: string;
    githubClientSecret: string;
    accessAud: string;
    accessJwts: Record<"user" | "admin" | "expired" | "wrongAud" | "foreignKey", string>;
    /** GitHub's front door as an App (github-app.test.ts): the API stub and the App's keys (PKCS#1 PEM). */
    githubAppApi: string;
    githubApp: { id: string; key: string; foreignKey: string; staticToken: string };
  }
}

/** What a Container would be, on this machine: real sandboxd + OpenCode processes behind the container host. */
export default async function setup(project: TestProject) {
  const root = mkdtempSync(join(tmpdir(), "alpine-worker-test-"));
  const git = await startGitServer({ username: "alice", password: SECRETS.gitPassword });
  const repoUrl = await git.createRepo("app", { "README.md": "# app\n", "src/main.txt": "hello\n" });
  const model = await startStubModel({ apiKey: SECRETS.modelKey });
  const stub = stubOpencodeConfig(model.baseURL);
  const webhooks = await startWebhookReceiver();
  const ctx = { home: join(root, "alpine-home"), config: DEFAULT_CONFIG } as unknown as Context;
  // OpenCode installs a plugin from the npm registry at start; keep all traffic on 127.0.0.1.
  process.env.npm_config_registry = "http://127.0.0.1:9/";
  const host = await startContainerHost({ provider: new LocalProvider(ctx) });
  // alice and bob are listed users, carol an admin, dave a member of the listed org, mallory nobody.
  const github = await startGithubOAuthStub({
    users: { alice: [], bob: ["other"], carol: [], dave: ["acme"], mallory: ["other"] },
  });
  const aud = "alpine-test-aud";
  project.provide("githubUrl", github.url);
  project.provide("githubClientId", github.clientId);
  project.provide("githubClientSecret", github.clientSecret);
  project.provide("accessAud", aud);
  // Signed once for the whole run: valid for hours, since a full run reaches the worker tests long
  // after this setup (the fixture's default of 10 minutes expired under CI).
  const valid = "6h";
  project.provide("accessJwts", {
    user: await github.signAccess({ email: "Dev@Example.com", aud, expiresIn: valid }),
    admin: await github.signAccess({ email: "ops@example.com", aud, expiresIn: valid }),
    expired: await github.signAccess({
      email: "dev@example.com",
      aud,
      expiresIn: Math.floor(Date.now() / 1000) - 120,
    }),
    wrongAud: await github.signAccess({ email: "dev@example.com", aud: "another-app", expiresIn: valid }),
    foreignKey: await github.signAccess({
      email: "dev@example.com",
      aud,
      foreignKey: true,
      expiresIn: valid,
    }),
  });
  project.provide("controlPlaneToken", SECRETS.controlPlane);
  project.provide("hostUrl", host.url);
  project.provide("hostToken", host.token);
  project.provide("repoUrl", repoUrl);
  project.provide("gitUser", "alice");
  project.provide("gitPassword", SECRETS.gitPassword);
  project.provide("modelKey", SECRETS.modelKey);
  project.provide("opencodeConfig", stub.config as Record<string, unknown>);
  project.provide("model", stub.model);
  project.provide("webhookUrl", webhooks.url);
  // GitHub App (github-app.test.ts): the API stub verifies the App's JWTs and issues installation tokens.
  const app = makeGithubApp();
  const staticToken = "ghs_WORKERSTATICTOKEN0123456789";
  const githubApi = await startGithubStub({ token: staticToken, app });
  project.provide("githubAppApi", githubApi.apiUrl);
  project.provide("githubApp", {
    id: app.id,
    key: app.privateKeyPkcs1,
    foreignKey: makeGithubApp(app.id).privateKeyPkcs1,
    staticToken,
  });
  return async () => {
    await host.close();
    await Promise.allSettled([
      git.close(),
      model.close(),
      webhooks.close(),
      github.close(),
      githubApi.close(),
    ]);
    rmSync(root, { recursive: true, force: true });
  };
}
