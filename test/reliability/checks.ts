// Invariants the reliability tests assert after every fault: the event log is a legal walk
// through the lifecycle table, no lease is left behind, and the checkpoint store holds only
// complete, verified checkpoints.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { canTransition, type SandboxState } from "@alpine/core";
import Database from "better-sqlite3";

export interface EventRow {
  seq: number;
  kind: string;
  from: string | null;
  to: string | null;
  reason: string;
  operation_id: string | null;
}

function db(alpineHome: string) {
  return new Database(join(alpineHome, "state.db"), { readonly: true, fileMustExist: true });
}

export function eventsOf(alpineHome: string, name: string): EventRow[] {
  const d = db(alpineHome);
  try {
    return d
      .prepare(
        `SELECT seq, kind, from_state AS "from", to_state AS "to", reason, operation_id FROM events WHERE name = ? ORDER BY seq`,
      )
      .all(name) as EventRow[];
  } finally {
    d.close();
  }
}

export function leaseOf(alpineHome: string, name: string): Record<string, unknown> | null {
  const d = db(alpineHome);
  try {
    const row = d.prepare("SELECT lease FROM leases WHERE name = ?").get(name) as
      | { lease: string }
      | undefined;
    return row ? JSON.parse(row.lease) : null;
  } finally {
    d.close();
  }
}

/**
 * Problems with a sandbox's transitions: each must be allowed by the lifecycle table and start
 * where the previous one ended (a gap means a lost update). A record re-created with
 * --force-recreate starts again from `new` (its note event says so).
 */
export function illegalTransitions(events: EventRow[]): string[] {
  const problems: string[] = [];
  let state: string | null = null;
  for (const e of events) {
    if (e.kind === "note" && e.to === "new") {
      state = "new";
      continue;
    }
    if (e.kind !== "transition") continue;
    if (state === null) problems.push(`#${e.seq}: a transition before the record was created`);
    else if (e.from !== state) problems.push(`#${e.seq}: ${e.from} → ${e.to}, but the state was ${state}`);
    if (!canTransition(e.from as SandboxState, e.to as SandboxState)) {
      problems.push(`#${e.seq}: ${e.from} → ${e.to} is not in the lifecycle table`);
    }
    state = e.to;
  }
  return problems;
}

interface Manifest {
  checkpoint_id: string;
  created_at: string;
  artifacts: { name: string; sha256: string; bytes: number }[];
  depends_on?: { checkpoints: { checkpoint_id: string }[]; upstream: string[] };
}

/** Every checkpoint manifest stored for a sandbox. */
export function storedCheckpoints(alpineHome: string, sandboxId: string): Manifest[] {
  const dir = join(alpineHome, "checkpoints", sandboxId);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => d !== "objects" && existsSync(join(dir, d, "manifest.json")))
    .map((d) => JSON.parse(readFileSync(join(dir, d, "manifest.json"), "utf8")) as Manifest);
}

/**
 * What is wrong with a sandbox's checkpoint store: checkpoints the record does not know as
 * verified and that are newer than its verified one (left by an interrupted checkpoint),
 * artifacts whose bytes do not match, objects no manifest refers to, and partial files.
 */
export function storeProblems(
  alpineHome: string,
  sandboxId: string,
  verified: { id: string; created_at: string } | null,
): string[] {
  const problems: string[] = [];
  const dir = join(alpineHome, "checkpoints", sandboxId);
  const manifests = storedCheckpoints(alpineHome, sandboxId);
  const referenced = new Set<string>();
  for (const m of manifests) {
    if (m.checkpoint_id !== verified?.id && (!verified || m.created_at > verified.created_at)) {
      problems.push(`checkpoint ${m.checkpoint_id} is stored but was never recorded as verified`);
    }
    for (const a of m.artifacts) {
      referenced.add(a.sha256);
      const path = join(dir, "objects", a.sha256);
      if (!existsSync(path)) {
        problems.push(`${m.checkpoint_id}/${a.name} is missing`);
        continue;
      }
      const sha = createHash("sha256").update(readFileSync(path)).digest("hex");
      if (sha !== a.sha256) problems.push(`${m.checkpoint_id}/${a.name} does not match its sha256`);
    }
  }
  if (verified && !manifests.some((m) => m.checkpoint_id === verified.id)) {
    problems.push(`the verified checkpoint ${verified.id} is not in the store`);
  }
  const objects = join(dir, "objects");
  if (existsSync(objects)) {
    for (const f of readdirSync(objects)) {
      if (!referenced.has(f)) problems.push(`objects/${f} belongs to no checkpoint`);
    }
  }
  for (const entry of existsSync(dir) ? readdirSync(dir) : []) {
    if (entry.startsWith(".")) problems.push(`${entry} is left over`);
    const sub = join(dir, entry);
    if (entry !== "objects" && !existsSync(join(sub, "manifest.json")))
      problems.push(`${entry} has no manifest`);
  }
  return problems;
}

/**
 * Files (path → content) of a checkpoint's workspace: its bundle's checkpoint commit, read with
 * git, after what a thin bundle builds on (docs/durability.md): the upstream repo `upstream` (a
 * bare repo's path, read directly) and the earlier checkpoints of its chain.
 */
export function checkpointFiles(
  alpineHome: string,
  sandboxId: string,
  checkpointId: string,
  upstream?: string,
): Map<string, string> {
  const dir = join(alpineHome, "checkpoints", sandboxId);
  const manifest = JSON.parse(readFileSync(join(dir, checkpointId, "manifest.json"), "utf8")) as Manifest;
  const bundle = manifest.artifacts.find((a) => a.name === "workspace.bundle")!;
  const scratch = mkdtempSync(join(tmpdir(), "alpine-rel-bundle-"));
  try {
    const git = (...args: string[]) =>
      execFileSync("git", ["-C", scratch, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    git("init", "-q", "--bare");
    if (upstream && (manifest.depends_on?.upstream.length ?? 0) > 0)
      git("fetch", "-q", upstream, "+refs/heads/*:refs/upstream/*");
    for (const [i, link] of (manifest.depends_on?.checkpoints ?? []).entries()) {
      const m = JSON.parse(readFileSync(join(dir, link.checkpoint_id, "manifest.json"), "utf8")) as Manifest;
      const b = m.artifacts.find((a) => a.name === "workspace.bundle")!;
      git("fetch", "-q", join(dir, "objects", b.sha256), `+refs/*:refs/link${i}/*`);
    }
    git("fetch", "-q", join(dir, "objects", bundle.sha256), `refs/alpine/checkpoints/${checkpointId}:refs/c`);
    const files = new Map<string, string>();
    for (const path of git("ls-tree", "-r", "--name-only", "-z", "refs/c").split("\0").filter(Boolean)) {
      files.set(path, git("cat-file", "blob", `refs/c:${path}`));
    }
    return files;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
