import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// core must run inside a Durable Object: no Node built-ins, no Workers-only APIs.
describe("core is runtime-agnostic", () => {
  const dir = join(import.meta.dirname, "..", "src");
  const files = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  it("covers the orchestrator's modules too", () => {
    expect(files).toContain(join("orchestrator", "decisions", "safety.ts"));
  });
  for (const file of files) {
    it(`${file} imports nothing from node: or cloudflare:`, () => {
      const text = readFileSync(join(dir, file), "utf8");
      const imports = [...text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]!);
      expect(
        imports.filter(
          (i) =>
            /^(node:|cloudflare:)/.test(i) || ["fs", "path", "os", "child_process", "crypto"].includes(i),
        ),
      ).toEqual([]);
      expect(text).not.toMatch(/\bprocess\.(env|pid|kill)|\bBuffer\./);
    });
  }
});
