import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CheckpointExporter, CheckpointManifest, WorkExport } from "@alpine/core";
import { AlpineError } from "@alpine/core/errors";
import { execa } from "execa";
import { gitWithCredentials } from "./git-host.ts";
import type { LocalCheckpointStore } from "./store/checkpoint-store.ts";

/**
 * Export from a checkpoint when the sandbox's runtime is gone: the bundle is
 * fetched into a scratch repository on the host, the checkpoint's tree is
 * committed on top of the branch head, and that commit is pushed (or turned
 * into a patch).
 */
export class HostCheckpointExporter implements CheckpointExporter {
  constructor(private readonly store: LocalCheckpointStore) {}

  async export(
    manifest: CheckpointManifest,
    opts: Parameters<CheckpointExporter["export"]>[1],
  ): Promise<WorkExport> {
    const bundle = manifest.artifacts.find((a) => a.name.endsWith(".bundle"));
    if (!bundle)
      throw new AlpineError(
        "checkpoint_missing",
        `checkpoint ${manifest.checkpoint_id} has no git bundle`,
        {},
      );
    const bundlePath = await this.store.artifactPath(
      manifest.sandbox_id,
      manifest.checkpoint_id,
      bundle.name,
    );
    const scratch = mkdtempSync(join(tmpdir(), "alpine-export-"));
    const git = async (args: string[], env?: NodeJS.ProcessEnv) => {
      const r = await execa("git", args, {
        cwd: scratch,
        reject: false,
        env: { GIT_TERMINAL_PROMPT: "0", ...env },
      });
      if (r.exitCode !== 0) {
        throw new AlpineError(
          "internal_error",
          `git ${args[0]} failed: ${String(r.stderr ?? "")
            .trim()
            .split("\n")
            .at(-1)}`,
          {},
        );
      }
      return r.stdout.trim();
    };
    try {
      await git(["init", "--quiet", "--bare", "."]);
      // A thin checkpoint: first what it builds on (the remote's commits, the earlier checkpoints).
      if ((manifest.depends_on?.upstream.length ?? 0) > 0) {
        const isUrl = /^[a-z]+:\/\//i.test(opts.repo);
        const r = await gitWithCredentials(
          ["fetch", "--quiet", "--no-tags", "--", opts.repo, "+refs/heads/*:refs/upstream/*"],
          {
            cwd: scratch,
            credentials: isUrl ? opts.credentials : undefined,
            remote: isUrl ? opts.repo : "file:///",
          },
        );
        if (r.exitCode !== 0) {
          throw new AlpineError(
            "checkpoint_missing",
            `checkpoint ${manifest.checkpoint_id} builds on commits of ${opts.repo}, which cannot be fetched: ${String(
              r.stderr ?? "",
            )
              .trim()
              .split("\n")
              .at(-1)}`,
            { checkpoint_id: manifest.checkpoint_id },
          );
        }
      }
      for (const [i, link] of (opts.chain ?? []).entries()) {
        const path = await this.store.artifactPath(link.sandbox_id, link.checkpoint_id, "workspace.bundle");
        await git(["fetch", "--quiet", path, `+refs/*:refs/link${i}/*`]);
      }
      await git(["fetch", "--quiet", bundlePath, "+refs/*:refs/bundle/*"]);
      const headTree = await git(["rev-parse", `${manifest.head_commit}^{tree}`]);
      if (headTree === manifest.tree_hash && manifest.head_commit === manifest.base_commit) {
        throw new AlpineError("nothing_to_export", "the checkpoint holds no change to export", {});
      }
      const commit =
        headTree === manifest.tree_hash
          ? manifest.head_commit
          : await git(["commit-tree", manifest.tree_hash, "-p", manifest.head_commit, "-m", opts.message], {
              GIT_AUTHOR_NAME: opts.author.name,
              GIT_AUTHOR_EMAIL: opts.author.email,
              GIT_COMMITTER_NAME: opts.author.name,
              GIT_COMMITTER_EMAIL: opts.author.email,
            });
      const numstat = await git(["diff", "--numstat", manifest.base_commit, commit]);
      let insertions = 0;
      let deletions = 0;
      const lines = numstat ? numstat.split("\n") : [];
      for (const line of lines) {
        const [ins, del] = line.split("\t");
        insertions += Number(ins) || 0;
        deletions += Number(del) || 0;
      }
      const result: WorkExport = {
        branch: opts.branch,
        commit,
        base_commit: manifest.base_commit,
        tree_hash: manifest.tree_hash,
        files_changed: lines.length,
        insertions,
        deletions,
        pushed: false,
        remote: null,
      };
      if (opts.patch) {
        result.patch = `${await git(["diff", "--binary", manifest.base_commit, commit])}\n`;
      }
      if (opts.push) {
        const isUrl = /^[a-z]+:\/\//i.test(opts.repo);
        const r = await gitWithCredentials(
          ["push", "--porcelain", "--", opts.repo, `${commit}:refs/heads/${opts.branch}`],
          {
            cwd: scratch,
            credentials: isUrl ? opts.credentials : undefined,
            remote: isUrl ? opts.repo : "file:///",
          },
        );
        if (r.exitCode !== 0) {
          const why = `${r.stdout}\n${r.stderr}`.trim();
          throw new AlpineError(
            /rejected|non-fast-forward|protected|denied/i.test(why) ? "push_rejected" : "repo_unreachable",
            `pushing ${opts.branch} failed: ${why.split("\n").filter(Boolean).at(-1) ?? "git push failed"}`,
            { branch: opts.branch, git: why.slice(0, 2000) },
          );
        }
        result.pushed = true;
        result.remote = opts.repo;
      }
      return result;
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
}
