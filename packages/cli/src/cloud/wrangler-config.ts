import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The parts of packages/worker/wrangler.jsonc that alpine reads (deploy checks, the dev runtime). */
export interface WranglerConfig {
  name?: string;
  main?: string;
  compatibility_date?: string;
  compatibility_flags?: string[];
  durable_objects?: { bindings?: { name: string; class_name: string }[] };
  migrations?: { tag: string; new_sqlite_classes?: string[] }[];
  containers?: {
    class_name: string;
    image: string;
    image_build_context?: string;
    instance_type?: unknown;
    max_instances?: number;
  }[];
  r2_buckets?: { binding: string; bucket_name: string }[];
  vars?: Record<string, string>;
}

/** JSONC → JSON: drops comments (outside strings) and trailing commas. */
export function parseJsonc(text: string): unknown {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      out += c;
      if (c === "\\") out += text[++i] ?? "";
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (c === "/" && text[i + 1] === "*") {
      i += 2;
      while (i < text.length && !(text[i] === "*" && text[i + 1] === "/")) i++;
      i++;
    } else out += c;
  }
  return JSON.parse(out.replace(/,(\s*[}\]])/g, "$1"));
}

export function readWranglerConfig(workerDir: string): WranglerConfig {
  return parseJsonc(readFileSync(join(workerDir, "wrangler.jsonc"), "utf8")) as WranglerConfig;
}
