#!/usr/bin/env node
// The built CLI lives in ../dist (made by `npm ci`/`npm run build`). A plain `alpine list`
// takes a fast path without the command-line parser (dist/fast.js); everything else the full CLI.
const argv = process.argv.slice(2);
const fast = (argv[0] === "list" || argv[0] === "ls") && (await import("../dist/fast.js"));
if (!fast || !(await fast.runFast(argv))) await import("../dist/alpine.js");
