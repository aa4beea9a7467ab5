import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // End-to-end tests run real OpenCode processes (~320 MB each) on a 2-core machine.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ["default"],
    // `npm run coverage` (scripts/coverage.mjs) turns this on; plain test runs do not pay for it.
    // V8 coverage of the Node project only: workerd has no node:inspector, so the worker project
    // cannot be measured this way (the worker row counts what the Node tests load of packages/worker).
    coverage: {
      provider: "v8",
      include: ["packages/*/src/**/*.ts"],
      reporter: ["text-summary", "json-summary"],
      reportsDirectory: "coverage",
    },
    projects: [
      {
        extends: true,
        test: {
          name: "node",
          include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
          // The control plane's tests run inside workerd: their own project below.
          exclude: ["packages/worker/**", "**/node_modules/**"],
          // A Docker daemon and the sandbox image for the docker-provider tests (skipped without Docker, except in CI).
          // docs/reliability.md is generated from the rows the reliability tests record.
          globalSetup: ["test/setup/docker.ts", "test/reliability/global-setup.ts"],
        },
      },
      "packages/worker/vitest.config.ts",
    ],
  },
});
