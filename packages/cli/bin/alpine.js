#!/usr/bin/env node
// CommonJS (bin/package.json), so a plain `alpine list` never starts Node's ESM loader: it takes
// the fast path (dist/fast.cjs, one file, no command-line parser); everything else, or a list
// the fast path hands back, the full CLI (dist/alpine.js, ESM), both built by `npm ci`/`npm run build`.
if (Number(process.versions.node.split(".")[0]) < 22) {
  // Said plainly before anything loads: on an older Node, better-sqlite3's addon would fail to load instead.
  process.stderr.write(
    `alpine needs Node.js 22 or newer (this is ${process.version}); scripts/install-deps.sh installs Node 24\n`,
  );
  process.exit(2);
}
// V8 keeps the code it compiles for the CLI (in os.tmpdir(), per Node build and user) and reuses it
// next time: the full CLI starts faster (docs/dependencies.md has the numbers). Not inherited by
// child processes.
require("node:module").enableCompileCache?.();
const argv = process.argv.slice(2);
const fast = argv[0] === "list" || argv[0] === "ls" ? require("../dist/fast.cjs").runFast(argv) : null;
Promise.resolve(fast).then((done) => done || import("../dist/alpine.js"));
