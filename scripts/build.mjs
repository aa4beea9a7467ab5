// Bundles the CLI, sandboxd and the control plane Worker (for `alpine cloud dev`) with esbuild. Runs from `npm ci` (prepare) and before tests.
// The CLI is split per command (dynamic imports) so `alpine list` loads only what it needs.
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { build } from "esbuild";

// Stale chunks from earlier builds would otherwise pile up beside the new ones.
rmSync("packages/cli/dist", { recursive: true, force: true });
rmSync("packages/sandboxd/dist", { recursive: true, force: true });
rmSync("packages/worker/dist", { recursive: true, force: true });

// zod's namespace export (`import { z } from "zod"`) keeps `z.locales`, and so its 40-odd
// translations of every error message: ≈360 KB of each bundle that loads zod, compiled at every
// start of sandboxd and of any CLI command that validates (≈10 ms of V8 compile per start, half
// of sandboxd's). alpine never calls `z.config(z.locales.xx())`, and zod configures English itself
// (classic/schemas.js imports locales/en.js directly), so here `z.locales` (and `z.core.locales`)
// offers `en` alone; error messages are unchanged. Only zod's own imports of the index are mapped.
const zodEnglishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](core|classic)$/.test(args.resolveDir)
        ? { path: join(args.resolveDir, "..", "locales", "index.js"), namespace: "zod-english-only" }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "zod-english-only" }, (args) => ({
      contents: 'export { default as en } from "./en.js";',
      resolveDir: dirname(args.path),
    }));
  },
};

// `import { createServer } from "node:http"` in an ES module makes Node evaluate every export of
// node:http, among them the lazy getters (WebSocket, MessageEvent…) that compile undici: ≈60 ms
// of CPU at every start of sandboxd (before it spawns OpenCode) and of the CLI (docs/performance.md).
// The bundles take node:http through require() instead (the banner's), which reads only the
// exports the code uses. Node's fetch still loads undici, when it is first used.
const httpWithoutUndici = {
  name: "node-http-without-undici",
  setup(b) {
    b.onResolve({ filter: /^(node:)?http$/ }, (args) =>
      args.kind === "import-statement" ? { path: "node:http", namespace: "http-by-require" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "http-by-require" }, () => ({
      contents: 'module.exports = require("node:http");',
      loader: "js",
    }));
  },
};

const common = {
  bundle: true,
  platform: "node",
  target: "node22",
  format: "esm",
  sourcemap: "linked",
  logLevel: "warning",
  // Native and binary-shipping packages stay outside the bundle.
  external: ["better-sqlite3", "opencode-ai", "playwright-core", "miniflare"],
  plugins: [zodEnglishOnly, httpWithoutUndici],
  banner: {
    // Some bundled CommonJS dependencies call require(); give ESM output one.
    js: "import { createRequire as __alpineCreateRequire } from 'node:module'; const require = __alpineCreateRequire(import.meta.url);",
  },
};

// The CLI bundles better-sqlite3's JavaScript (a dozen CommonJS files, each a lookup and a load at
// start-up otherwise); its native addon stays in node_modules, found by packages/cli/src/store/
// sqlite-store.ts (nativeBinding), so the `bindings` package it would load to find it stays out.
const cli = {
  ...common,
  external: ["bindings", "opencode-ai", "playwright-core", "miniflare"],
};

await Promise.all([
  build({
    ...cli,
    entryPoints: { alpine: "packages/cli/src/main.ts" },
    outdir: "packages/cli/dist",
    // The reliability tests' fault hook exists only in their own bundle (test/reliability/harness.ts, buildClis).
    define: { __ALPINE_FAULTS__: "false" },
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
  }),
  // `alpine list` without the command-line parser (packages/cli/src/fast.ts), run by bin/alpine.js:
  // one self-contained CommonJS file, so that Node's ESM loader has no chunks to resolve and link.
  build({
    ...cli,
    entryPoints: { fast: "packages/cli/src/fast.ts" },
    outfile: "packages/cli/dist/fast.cjs",
    format: "cjs",
    define: { __ALPINE_FAULTS__: "false", "import.meta.url": "__alpineImportMetaUrl" },
    banner: { js: "const __alpineImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  }),
  build({
    ...common,
    entryPoints: {
      sandboxd: "packages/sandboxd/src/main.ts",
    },
    outdir: "packages/sandboxd/dist",
  }),
  // The control plane Worker as workerd runs it in `alpine cloud dev` (packages/cli/src/cloud/
  // dev-runtime.ts): one ES module, workerd's package conditions, `cloudflare:*` provided by workerd.
  // `alpine cloud deploy` bundles with wrangler instead, as Cloudflare expects.
  build({
    entryPoints: ["packages/worker/src/index.ts"],
    outfile: "packages/worker/dist/worker.js",
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    external: ["cloudflare:*"],
    sourcemap: "linked",
    logLevel: "warning",
    plugins: [zodEnglishOnly],
  }),
]);
