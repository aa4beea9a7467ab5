import type { SandboxRecord } from "../../schemas.ts";

/**
 * Overlap warnings (docs/cli.md, "Overlaps"): sandboxes on the same repository whose changed
 * files intersect. Computed from what each record kept of its last probe (`record.changes`), so
 * `list` answers without asking any sandbox. Type-only imports: `list`'s fast path loads this.
 */

/** One sandbox's work as overlap checks see it. */
export interface WorkOnRepo {
  name: string;
  repo: string;
  /** The files changed against the base commit, as the last probe saw them. */
  files: readonly string[];
  /** The sandbox was torn down (its work, if any, lives in a checkpoint). */
  destroyed: boolean;
  /** Its changes are not all in its latest pushed export (none, a patch only, or the tree moved on since). */
  unexported: boolean;
}

/** Another sandbox whose changed files intersect this one's, with the files both changed. */
export interface Overlap {
  name: string;
  files: string[];
}

/**
 * One spelling per repository, so the same repo reached by different URL forms compares equal:
 * `https://github.com/o/r.git`, `https://user@GitHub.com/o/r/`, `git@github.com:o/r`,
 * `ssh://git@github.com/o/r.git` all give `github.com/o/r`; a local path and its `file://` URL
 * give the path without trailing slashes or `.git`.
 */
export function repoIdentity(repo: string): string {
  let r = repo.trim();
  if (r.startsWith("file://")) r = r.slice("file://".length);
  const scp = /^[^/@\s]+@([^:/\s]+):(?!\/)(.+)$/.exec(r);
  let host: string | null = null;
  let path: string;
  if (scp) {
    host = scp[1]!;
    path = scp[2]!;
  } else {
    const url = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/]*@)?([^/:]+)(?::\d+)?(\/.*)?$/i.exec(r);
    if (url) {
      host = url[1]!;
      path = url[2] ?? "";
    } else {
      path = r;
    }
  }
  path = path
    .replace(/[?#].*$/, "")
    .replace(/\/+$/, "")
    .replace(/\.git$/, "")
    .replace(/\/+$/, "");
  if (host === null) return path.replace(/\/{2,}/g, "/");
  return `${host.toLowerCase()}/${path.replace(/^\/+/, "")}`;
}

/** A record's work as the overlap checks see it (`changes` is the last probe's, or none). */
export function workOf(record: SandboxRecord): WorkOnRepo {
  const changes = record.changes ?? null;
  return {
    name: record.name,
    repo: record.repo,
    files: changes?.files ?? [],
    destroyed: record.state === "destroyed",
    unexported:
      changes !== null &&
      changes.files.length > 0 &&
      (record.export?.pushed_at == null ||
        changes.tree_hash === null ||
        record.export.tree_hash !== changes.tree_hash),
  };
}

/**
 * The other sandboxes `subject` overlaps, by name, with the files both changed (sorted).
 * `unexportedOnly` (export's warning) counts only others whose work is not exported yet, torn
 * down or not; otherwise (`list`, `status`) every other sandbox that is not destroyed counts.
 */
export function overlapsOf(
  subject: WorkOnRepo,
  others: readonly WorkOnRepo[],
  opts: { unexportedOnly?: boolean } = {},
): Overlap[] {
  if (subject.files.length === 0) return [];
  const repo = repoIdentity(subject.repo);
  const mine = new Set(subject.files);
  const found: Overlap[] = [];
  for (const other of others) {
    if (other.name === subject.name || repoIdentity(other.repo) !== repo) continue;
    if (opts.unexportedOnly ? !other.unexported : other.destroyed) continue;
    const files = [...new Set(other.files.filter((f) => mine.has(f)))].sort();
    if (files.length > 0) found.push({ name: other.name, files });
  }
  return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Every sandbox's overlaps with the others (`list`): name → overlaps (empty when none). */
export function overlapsAmong(work: readonly WorkOnRepo[]): Map<string, Overlap[]> {
  return new Map(work.map((w) => [w.name, w.destroyed ? [] : overlapsOf(w, work)]));
}
