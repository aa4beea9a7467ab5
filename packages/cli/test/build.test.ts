import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../../test/helpers/cli.ts";

const bundles = () => {
  const cli = join(ROOT, "packages/cli/dist");
  return [
    ...readdirSync(join(cli, "chunks"))
      .filter((f) => f.endsWith(".js"))
      .map((f) => join(cli, "chunks", f)),
    join(cli, "alpine.js"),
    join(ROOT, "packages/sandboxd/dist/sandboxd.js"),
  ].map((file) => ({ file, text: readFileSync(file, "utf8") }));
};

describe("the bundles (scripts/build.mjs)", () => {
  it("keep only zod's English messages, the ones zod itself configures", () => {
    const all = bundles();
    const zod = all.filter((b) => b.text.includes("// node_modules/zod/v4/core/"));
    // The CLI's shared chunk and sandboxd.
    expect(zod.length).toBeGreaterThanOrEqual(2);
    for (const { file, text } of zod) {
      const locales = [...text.matchAll(/^\/\/ node_modules\/zod\/v4\/locales\/([\w-]+)\.js$/gm)].map(
        (m) => m[1],
      );
      expect(locales, file).toEqual(["en"]);
      expect(text, file).toContain("Invalid input: expected");
    }
  });

  it("take node:http through require(), never an ES import (which compiles undici at every start)", () => {
    const all = bundles();
    const esImports = all.filter((b) =>
      /\bfrom\s*["'](node:)?http["']|\bimport\s*["'](node:)?http["']/.test(b.text),
    );
    expect(esImports.map((b) => b.file)).toEqual([]);
    // sandboxd serves HTTP, so it does use node:http: by require.
    const sandboxd = all.find((b) => b.file.endsWith("sandboxd.js"))!;
    expect(sandboxd.text).toMatch(/require\("node:http"\)/);
  });
});
