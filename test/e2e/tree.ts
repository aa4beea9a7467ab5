import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join, relative } from "node:path";

/**
 * A hash of a whole working tree, untracked files included: every path with its
 * type, executable bit and bytes (.git excluded). Equal hashes mean byte-for-byte
 * equal files.
 */
export function treeDigest(root: string): { digest: string; files: Record<string, string> } {
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const rel = relative(root, p);
      if (rel === ".git") continue;
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) files[rel] = `link:${readlinkSync(p)}`;
      else
        files[rel] =
          `${st.mode & 0o111 ? "x" : "-"}:${createHash("sha256").update(readFileSync(p)).digest("hex")}`;
    }
  };
  walk(root);
  const digest = createHash("sha256").update(JSON.stringify(files)).digest("hex");
  return { digest, files };
}
