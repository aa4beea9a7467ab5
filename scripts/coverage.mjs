#!/usr/bin/env node
// Line and branch coverage per package, from V8's own coverage (no instrumentation).
//   npm run coverage                      every test of the Node project (slow: e2e included)
//   npm run coverage -- packages/core     one package's own tests, measuring that package only
// Any other arguments go to vitest as they are (test file filters, -t NAME, ...). Writes
// coverage/coverage-summary.json and prints one row per package.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..");
const packages = ["core", "cli", "sandboxd", "worker"];
const args = process.argv.slice(2);

// `packages/<name>` alone selects that package's tests and measures that package's code only,
// so another package's tests cannot raise its number.
const selected = args
  .map((arg) => /^packages\/([^/]+)\/?$/.exec(arg)?.[1])
  .filter((name) => name !== undefined);
const measured = selected.length > 0 ? selected : packages;
const include = measured.flatMap((name) => ["--coverage.include", `packages/${name}/src/**/*.ts`]);

const vitest = spawnSync(
  process.execPath,
  [
    join(root, "node_modules", "vitest", "vitest.mjs"),
    "run",
    "--project",
    "node",
    "--coverage.enabled",
    ...include,
    ...args,
  ],
  { cwd: root, stdio: "inherit" },
);

/** @type {Record<string, Record<string, { total: number, covered: number, pct: number }>>} */
const summary = JSON.parse(readFileSync(join(root, "coverage", "coverage-summary.json"), "utf8"));
const totals = new Map(measured.map((name) => [name, { lines: [0, 0], branches: [0, 0], files: 0 }]));
for (const [file, counts] of Object.entries(summary)) {
  if (file === "total") continue;
  const name = /^packages\/([^/]+)\//.exec(relative(root, file))?.[1];
  const row = name === undefined ? undefined : totals.get(name);
  if (!row) continue;
  row.files++;
  row.lines[0] += counts.lines.covered;
  row.lines[1] += counts.lines.total;
  row.branches[0] += counts.branches.covered;
  row.branches[1] += counts.branches.total;
}

const pct = ([covered, total]) => (total === 0 ? "-" : `${((100 * covered) / total).toFixed(1)}%`);
console.log("\npackage    files  lines            branches");
for (const [name, row] of totals) {
  const cell = (pair) => `${pct(pair)} (${pair[0]}/${pair[1]})`.padEnd(17);
  console.log(`${name.padEnd(10)} ${String(row.files).padStart(5)}  ${cell(row.lines)}${cell(row.branches)}`);
}
process.exit(vitest.status ?? 1);
