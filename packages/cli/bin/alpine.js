#!/usr/bin/env node
// CommonJS (bin/package.json), so a plain `alpine list` never starts Node's ESM loader: it takes
// the fast path (dist/fast.cjs, one file, no command-line parser); everything else, or a list
// the fast path hands back, the full CLI (dist/alpine.js, ESM), both built by `npm ci`/`npm run build`.
require("node:module").enableCompileCache?.();
const argv = process.argv.slice(2);
const fast = argv[0] === "list" || argv[0] === "ls" ? require("../dist/fast.cjs").runFast(argv) : null;
Promise.resolve(fast).then((done) => done || import("../dist/alpine.js"));
