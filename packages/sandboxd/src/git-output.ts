import type { DiffFile, FileStatus } from "@alpine/core/sandboxd-api";
import { firstLine } from "./git.ts";

/*
 * Parsers of git's machine-readable output (`-z` forms, porcelain). Pure
 * functions: the commands that produce the text are in the workspace modules.
 */

/** A changed file as `git diff --name-status -M` reports it (old_path for renames). */
export type NameStatusEntry = Pick<DiffFile, "path" | "status" | "old_path">;

/** Line counts of one file in `git diff --numstat` (binary files: 0/0). */
export type NumstatEntry = Pick<DiffFile, "insertions" | "deletions"> & { binary: boolean };

const STATUS_OF: Record<string, FileStatus> = {
  A: "added",
  C: "added",
  M: "modified",
  T: "modified",
  D: "deleted",
  R: "renamed",
};

/** `git diff --name-status -z [-M]`: "X\0path\0" records, "R100\0old\0new\0" for renames and copies. */
export function parseNameStatus(out: string): NameStatusEntry[] {
  const parts = out.split("\0");
  const files: NameStatusEntry[] = [];
  let i = 0;
  while (i < parts.length) {
    const code = parts[i];
    if (!code) {
      i++;
      continue;
    }
    const letter = code[0]!;
    if (letter === "R" || letter === "C") {
      const from = parts[i + 1] ?? "";
      const to = parts[i + 2] ?? "";
      files.push(
        letter === "R" ? { path: to, status: "renamed", old_path: from } : { path: to, status: "added" },
      );
      i += 3;
    } else {
      files.push({ path: parts[i + 1] ?? "", status: STATUS_OF[letter] ?? "modified" });
      i += 2;
    }
  }
  return files;
}

/** `git diff --numstat -z [-M]`, keyed by (new) path: "ins\tdel\tpath\0", renames "ins\tdel\t\0old\0new\0", "-" for binary. */
export function parseNumstat(out: string): Map<string, NumstatEntry> {
  const map = new Map<string, NumstatEntry>();
  const parts = out.split("\0");
  let i = 0;
  while (i < parts.length) {
    const rec = parts[i];
    if (!rec) {
      i++;
      continue;
    }
    // The path is everything after the second tab: it may hold tabs itself.
    const [ins, del] = rec.split("\t", 2);
    const path = rec.split("\t").slice(2).join("\t");
    const binary = ins === "-";
    const entry = {
      insertions: binary ? 0 : Number(ins) || 0,
      deletions: binary ? 0 : Number(del) || 0,
      binary,
    };
    if (path === "") {
      // rename: "ins\tdel\t\0old\0new\0"
      const to = parts[i + 2] ?? "";
      map.set(to, entry);
      i += 3;
    } else {
      map.set(path ?? "", entry);
      i += 1;
    }
  }
  return map;
}

/** Files changed (binary ones included) and total lines, as an export reports them. */
export function numstatTotals(counts: Map<string, NumstatEntry>): {
  files: number;
  insertions: number;
  deletions: number;
} {
  let insertions = 0;
  let deletions = 0;
  for (const c of counts.values()) {
    insertions += c.insertions;
    deletions += c.deletions;
  }
  return { files: counts.size, insertions, deletions };
}

/**
 * Why `git push --porcelain` failed: `rejected` when the remote refused a ref
 * (a "!" line: non-fast-forward, protected branch, hook declined), with the
 * reason from that line; else the first line of stderr (network, auth).
 */
export function pushFailure(stdout: string, stderr: string): { rejected: boolean; why: string } {
  const refused = stdout.split("\n").find((l) => l.startsWith("!"));
  const why = refused?.split("\t").slice(2).join(" ") || firstLine(stderr);
  return { rejected: refused !== undefined, why };
}
