import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

/**
 * The Worker's and Durable Objects' tests run inside workerd (real SQLite DO
 * storage, real local R2). The global setup (Node) starts what a Container
 * would run: a container host with real sandboxd + OpenCode processes on
 * 127.0.0.1, a git smart-HTTP server and the stub model.
 */
export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      main: "./src/index.ts",
      wrangler: { configPath: "./wrangler.jsonc" },
      miniflare: {
        bindings: {
          ALPINE_CONTROL_PLANE_TOKEN: inject("controlPlaneToken"),
          ALPINE_CONTAINER_HOST_URL: inject("hostUrl"),
          ALPINE_CONTAINER_HOST_TOKEN: inject("hostToken"),
          // Alarms never fire on their own during a test (10 min); tests run them with runDurableObjectAlarm.
          ALARM_INTERVAL_SECONDS: "600",
          CONTAINER_INACTIVITY_SECONDS: "86400",
          // identity: GitHub sign-in against the local stub, an Access team whose keys it serves.
          GITHUB_CLIENT_ID: inject("githubClientId"),
          GITHUB_CLIENT_SECRET: inject("githubClientSecret"),
          GITHUB_OAUTH_URL: inject("githubUrl"),
          GITHUB_API_URL: inject("githubUrl"),
          ACCESS_TEAM_DOMAIN: inject("githubUrl"),
          ACCESS_AUD: inject("accessAud"),
          ALPINE_ALLOWED_USERS: "alice,bob",
          ALPINE_ALLOWED_ORGS: "acme",
          ALPINE_ADMINS: "carol,ops@example.com",
        },
      },
    })),
  ],
  test: {
    name: "worker",
    root: import.meta.dirname,
    include: ["test/**/*.test.ts"],
    globalSetup: ["./test/global-setup.ts"],
    // Each file starts real sandboxd + OpenCode processes (~0.5 GB each): one file at a time on 2 cores.
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
