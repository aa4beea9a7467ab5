// Generates docs/schemas/*.schema.json from the zod schemas in @alpine/core:
// one file per entry of OUTPUT_SCHEMAS (the `--json` outputs and the error
// object) plus config.schema.json (what alpine.yaml may hold).
//
//   node scripts/gen-schemas.mjs            write the files (and remove stale ones)
//   node scripts/gen-schemas.mjs --check    exit 1 if the files on disk differ
//   --out DIR                               use DIR instead of docs/schemas
//
// The core is TypeScript, so it is bundled on the fly with esbuild and imported
// from memory; zod comes from the same bundle so the schemas and
// z.toJSONSchema share one zod instance.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SUFFIX = ".schema.json";

const TITLES = {
  error: "alpine error (with --json, on stdout)",
  config: "alpine configuration file (alpine.yaml, $XDG_CONFIG_HOME/alpine/config.yaml)",
};
const titleFor = (name) => TITLES[name] ?? `alpine ${name.replace("-", " ")} --json`;

async function loadCore() {
  const result = await build({
    stdin: {
      contents: 'export * from "./packages/core/src/index.ts";\nexport { z } from "zod";\n',
      resolveDir: ROOT,
      sourcefile: "gen-schemas-entry.ts",
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    platform: "node",
    write: false,
    logLevel: "warning",
  });
  const code = result.outputFiles[0].text;
  return import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`);
}

/**
 * Output objects declared with z.object() may gain keys in later versions
 * (docs/json-contract.md), so their schemas do not forbid extra properties;
 * only strict objects (the error object) do.
 */
function openObjects(ctx) {
  const def = ctx.zodSchema._zod.def;
  if (def.type === "object" && def.catchall === undefined && ctx.jsonSchema.additionalProperties === false) {
    delete ctx.jsonSchema.additionalProperties;
  }
}

function render(z, name, schema, io) {
  const body = z.toJSONSchema(schema, {
    io,
    target: "draft-2020-12",
    override: io === "output" ? openObjects : undefined,
  });
  const { $schema, ...rest } = body;
  const doc = { $schema, $id: `${name}${SUFFIX}`, title: titleFor(name), ...rest };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** name → file contents for every schema alpine publishes. */
export async function generateSchemas() {
  const core = await loadCore();
  const files = new Map();
  for (const [name, schema] of Object.entries(core.OUTPUT_SCHEMAS)) {
    files.set(`${name}${SUFFIX}`, render(core.z, name, schema, "output"));
  }
  if (files.has(`config${SUFFIX}`)) throw new Error("OUTPUT_SCHEMAS must not define 'config'");
  // What a user writes: keys with defaults are optional.
  files.set(`config${SUFFIX}`, render(core.z, "config", core.ConfigSchema, "input"));
  return files;
}

function existing(dir) {
  try {
    return readdirSync(dir).filter((f) => f.endsWith(SUFFIX));
  } catch {
    // No such directory yet: nothing on disk, so every schema is missing (--check) or new.
    return [];
  }
}

async function main(argv) {
  const check = argv.includes("--check");
  const outIdx = argv.indexOf("--out");
  const dir = outIdx >= 0 && argv[outIdx + 1] ? resolve(argv[outIdx + 1]) : join(ROOT, "docs", "schemas");
  const files = await generateSchemas();
  const onDisk = existing(dir);

  if (check) {
    const problems = [];
    for (const [file, text] of files) {
      let current = null;
      try {
        current = readFileSync(join(dir, file), "utf8");
      } catch {
        // Unreadable or absent: reported below as missing.
      }
      if (current === null) problems.push(`missing: ${file}`);
      else if (current !== text) problems.push(`out of date: ${file}`);
    }
    for (const file of onDisk) if (!files.has(file)) problems.push(`stale (no schema generates it): ${file}`);
    if (problems.length > 0) {
      process.stderr.write(
        `docs/schemas differs from the zod schemas:\n  ${problems.join("\n  ")}\nrun \`npm run schemas\` and commit the result\n`,
      );
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`${files.size} schema files are up to date in ${dir}\n`);
    return;
  }

  mkdirSync(dir, { recursive: true });
  for (const file of onDisk) if (!files.has(file)) rmSync(join(dir, file));
  for (const [file, text] of files) writeFileSync(join(dir, file), text);
  process.stdout.write(`wrote ${files.size} schema files to ${dir}\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main(process.argv.slice(2));
}
