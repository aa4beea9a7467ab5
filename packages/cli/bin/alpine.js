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
const argv = process.argv.slice(2);
if (argv[0] === "launch") require("./early-sandboxd.js").startEarlySandboxd(argv, process.env);
const fast = argv[0] === "list" || argv[0] === "ls" ? require("../dist/fast.cjs").runFast(argv) : null;
Promise.resolve(fast).then((done) => done || fullCli());

function fullCli() {
  // V8 keeps the code it compiles for the full CLI (≈1 MB of JavaScript) in os.tmpdir(), per Node
  // build and user, and reuses it next time; the one-file fast path gains nothing from it, so it is
  // turned on here (docs/dependencies.md has the numbers). Child processes do not inherit it.
  require("node:module").enableCompileCache?.();
  return import("../dist/alpine.js");
}
