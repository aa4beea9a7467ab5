import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const root = join(import.meta.dirname, "..", "..");

/** Bundles a TypeScript test helper into node_modules/.cache so it runs as a plain node process. */
export async function bundleHelper(entry: string): Promise<string> {
  const outdir = join(root, "node_modules", ".cache", "alpine-test");
  mkdirSync(outdir, { recursive: true });
  const name = entry.split("/").pop()!.replace(/\.ts$/, ".mjs");
  const outfile = join(outdir, name);
  await build({
    entryPoints: [join(root, entry)],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    external: ["better-sqlite3"],
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    logLevel: "error",
  });
  return outfile;
}
