import { AlpineError, toAlpineError } from "../errors.ts";
import type { Progress } from "../ports.ts";
import { validateBranchName } from "../refs.ts";
import type { ChangesRecord, ExportRecord, SandboxRecord } from "../schemas.ts";
import { verifiedManifestChain } from "./checkpoint.ts";
import { ignoreFailure, note, nowIso, reach, update } from "./context.ts";
import { formatUsage } from "./decisions/budget.ts";
import {
  autoTeardownAfterExport,
  exportMessage,
  exportPrecheck,
  exportRetryable,
  exportSource,
} from "./decisions/export.ts";
import { type Overlap, overlapsOf, workOf } from "./decisions/overlaps.ts";
import { activeLease, connectTo, getRecord, peerWork } from "./reading.ts";
import { withLease } from "./settle.ts";
import { teardown } from "./teardown.ts";
import type { ExportInput, ExportResult, GitCredentials, OrchestratorDeps, WorkExport } from "./types.ts";

/**
 * `export`: commits the sandbox's work onto a branch and pushes it (or only makes a patch), from
 * the live workspace or, when the runtime is gone, from the latest verified checkpoint
 * (docs/durability.md, "Export"). Holds the export lease throughout.
 */
export async function exportWork(
  deps: OrchestratorDeps,
  name: string,
  input: ExportInput,
  progress: Progress,
): Promise<ExportResult> {
  const record = await getRecord(deps, name);
  exportPrecheck(
    name,
    record.state,
    exportRetryable(record.state) && (await activeLease(deps, name)) !== null,
  );
  const branch = validateBranchName(input.branch ?? record.branch);
  const push = !input.patch;
  const result = await withLease(deps, record, "export", async (op) => {
    await reach(deps, "export.lease_acquired");
    let current = await getRecord(deps, name);
    const source = exportSource(name, current.state, input.from_checkpoint === true);
    const credentials = push ? await pushCredentials(deps, current.repo) : undefined;
    const author = await deps.gitAuthor();
    let work: WorkExport;
    let overlaps: Overlap[] = [];
    let seen: ChangesRecord | null = null;
    if (source === "workspace") {
      const client = await connectTo(deps, current);
      const status = await client.status();
      const files = status.workspace?.changed_files.map((f) => f.path) ?? [];
      overlaps = await warnOverlaps(deps, current, files, progress);
      const message = exportMessage(current.task?.prompt_summary ?? null, name, files);
      seen = { files: [...files].sort(), tree_hash: null, seen_at: nowIso(deps) };
      progress.step(push ? `pushing ${branch}` : "making the patch");
      work = await client.export({ branch, message, author, push, credentials });
      if (!push) {
        const diff = await client.diff({ stat: false });
        work = { ...work, patch: diff.patch ?? "" };
      }
    } else {
      const checkpoint = current.checkpoint?.verified ? current.checkpoint : null;
      if (!checkpoint) {
        throw new AlpineError(
          "checkpoint_missing",
          `sandbox '${name}' has no verified checkpoint to export from`,
          {
            state: current.state,
          },
        );
      }
      overlaps = await warnOverlaps(deps, current, current.changes?.files ?? [], progress);
      const { manifest, chain } = await verifiedManifestChain(deps, current, checkpoint.id);
      // A checkpoint built on upstream commits is exported after fetching them from the remote.
      const fetchCredentials =
        credentials ??
        ((manifest.depends_on?.upstream.length ?? 0) > 0
          ? ((await deps.credentialsFor(current.repo)) ?? undefined)
          : undefined);
      progress.step(push ? `pushing ${branch} from checkpoint ${checkpoint.id}` : "making the patch");
      work = await deps.checkpointExporter.export(manifest, {
        repo: current.repo,
        branch,
        message: exportMessage(current.task?.prompt_summary ?? null, name, []),
        author,
        push,
        patch: !push,
        credentials: fetchCredentials,
        chain,
      });
    }
    await reach(deps, "export.pushed");
    const exportedAt = nowIso(deps);
    const exportRecord: ExportRecord = {
      branch,
      commit: work.commit,
      tree_hash: work.tree_hash,
      remote: work.remote,
      pushed_at: work.pushed ? exportedAt : null,
      pr_url: null,
      patch_file: null,
      exported_at: exportedAt,
    };
    // The exported tree is the workspace's now: its changes count as exported (decisions/overlaps.ts).
    const changes = seen ? { ...seen, tree_hash: work.tree_hash } : current.changes;
    current = await update(deps, current, { export: exportRecord, ...(changes ? { changes } : {}) });
    await reach(deps, "export.recorded");
    let prUrl: string | null = null;
    if (input.pr && work.pushed) {
      progress.step("opening the pull request");
      prUrl = await openPullRequest(deps, current, branch, work, credentials);
      current = await update(deps, current, { export: { ...exportRecord, pr_url: prUrl } });
    }
    await note(
      deps,
      current,
      op.id,
      work.pushed
        ? `exported ${work.commit.slice(0, 12)} to ${branch}${prUrl ? ` (${prUrl})` : ""}`
        : "exported a patch",
      exportedAt,
    );
    return {
      record: current,
      work,
      source,
      pr_url: prUrl,
      checkpoint_id: source === "checkpoint" ? (current.checkpoint?.id ?? null) : null,
      auto_tore_down: false,
      exported_at: exportedAt,
      overlaps,
    };
  });
  if (autoTeardownAfterExport(result.work.pushed, result.record.state, deps.config)) {
    // The export succeeded; a teardown that cannot go ahead now leaves the sandbox to `gc`.
    const torn = await teardown(deps, name, { force: false }, progress).catch((err: unknown) => {
      ignoreFailure(deps, `the automatic teardown of '${name}' after its export`)(err);
      return null;
    });
    if (torn?.destroyed) return { ...result, record: torn.record, auto_tore_down: true };
  }
  return result;
}

/** The credentials a push carries; github_auth_missing when the remote requires some and there are none. */
async function pushCredentials(deps: OrchestratorDeps, repo: string): Promise<GitCredentials | undefined> {
  const credentials = (await deps.credentialsFor(repo)) ?? undefined;
  if (!credentials && deps.requiresAuth(repo)) {
    throw new AlpineError(
      "github_auth_missing",
      `no credentials for ${repo}; set GITHUB_TOKEN or GH_TOKEN, or configure a git credential helper`,
      { repo },
    );
  }
  return credentials;
}

async function openPullRequest(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  branch: string,
  work: WorkExport,
  credentials: GitCredentials | undefined,
): Promise<string> {
  try {
    const pr = await deps.pullRequests.open({
      repo: record.repo,
      head: branch,
      base: record.ref,
      title: record.task?.prompt_summary || `alpine: ${record.name}`,
      body:
        `Work of the alpine sandbox \`${record.name}\` (${work.files_changed} files changed, +${work.insertions} −${work.deletions}).` +
        // What the agent spent, as sandboxd last reported it (OpenCode's own message metadata).
        (record.usage ? `\n\nAgent usage: ${formatUsage(record.usage)}.` : ""),
      credentials: credentials ?? null,
    });
    return pr.url;
  } catch (err) {
    const error = toAlpineError(err);
    throw error.reason === "internal_error"
      ? new AlpineError(
          "pr_failed",
          `branch ${branch} was pushed, but the pull request failed: ${error.message}`,
          {
            branch,
            commit: work.commit,
          },
        )
      : error;
  }
}

/**
 * Warns (never refuses) when the files about to be exported overlap other sandboxes' unexported
 * work on the same repo, as their records last saw it.
 */
async function warnOverlaps(
  deps: OrchestratorDeps,
  record: SandboxRecord,
  files: readonly string[],
  progress: Progress,
): Promise<Overlap[]> {
  const others = await peerWork(deps);
  const overlaps = overlapsOf({ ...workOf(record), files }, others, { unexportedOnly: true });
  for (const o of overlaps) {
    const shown =
      o.files.slice(0, 5).join(", ") + (o.files.length > 5 ? ` and ${o.files.length - 5} more` : "");
    progress.warn(`sandbox '${o.name}' has unexported changes to the same files: ${shown}`);
  }
  return overlaps;
}
