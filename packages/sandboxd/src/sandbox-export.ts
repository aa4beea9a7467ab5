import { rmSync } from "node:fs";
import { join } from "node:path";
import { AlpineError } from "@alpine/core/errors";
import type { ExportRequest, ExportResponse } from "@alpine/core/sandboxd-api";
import { safeShow } from "./git.ts";
import type { Sandbox } from "./sandbox.ts";
import { commitAll, exportCounts, pushWork } from "./workspace-export.ts";

/** POST /v1/export: commits all work onto the sandbox's branch (see commitAll) and optionally pushes it. */
export async function exportWork(sb: Sandbox, req: ExportRequest): Promise<ExportResponse> {
  sb.requireReady();
  const branch = await sb.git.checkBranch(req.branch);
  for (const v of [req.author.name, req.author.email]) {
    if (/[\u0000-\u001f\u007f<>]/.test(v)) {
      throw new AlpineError(
        "usage_invalid",
        "author name and email must not contain control characters or <>",
        {
          author: safeShow(v),
        },
      );
    }
  }
  if (req.credentials && /[\n\0]/.test(req.credentials.username + req.credentials.password)) {
    throw new AlpineError("usage_invalid", "credentials must not contain newlines or NUL characters");
  }
  sb.log.addSecret(req.credentials?.password);
  const end = sb.reserve("export");
  const t0 = Date.now();
  let work: string | null = null;
  try {
    const meta = sb.workspace.requireMeta();
    work = sb.checkpoints.newWorkDir();
    const done = await commitAll(sb.workspace, {
      privateDir: join(work, "git"),
      message: req.message,
      author: req.author,
    });
    const counts = await exportCounts(sb.workspace, done.env, meta.base_commit, done.commit);
    let remote: string | null = null;
    if (req.push) {
      ({ remote } = await pushWork(sb.workspace, {
        env: done.env,
        commit: done.commit,
        branch,
        credentials: req.credentials,
      }));
    }
    sb.log.info("exported", {
      branch,
      commit: done.commit,
      created: done.created,
      pushed: req.push,
      ms: Date.now() - t0,
    });
    return {
      branch,
      commit: done.commit,
      base_commit: meta.base_commit,
      tree_hash: done.tree,
      ...counts,
      pushed: req.push,
      remote,
    };
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
    end();
  }
}
