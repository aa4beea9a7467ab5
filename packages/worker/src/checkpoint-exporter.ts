import {
  type AlpineConfig,
  AlpineError,
  type CheckpointExporter,
  type CheckpointManifest,
  type RuntimeHandle,
  type SandboxdClient,
  type WorkExport,
} from "@alpine/core";
import { chainLinkArtifactName } from "@alpine/core/sandboxd-api";
import type { ControlPlaneProvider } from "./providers/types.ts";
import type { R2CheckpointStore } from "./r2-store.ts";

/**
 * Export from a checkpoint when the sandbox's runtime is gone: the control
 * plane cannot run git itself, so it starts a short-lived runtime, restores
 * the checkpoint into it, exports from there (push or patch), and removes it.
 */
export class RuntimeCheckpointExporter implements CheckpointExporter {
  constructor(
    private readonly provider: ControlPlaneProvider,
    private readonly store: R2CheckpointStore,
    private readonly connect: (endpoint: { url: string; token: string }) => SandboxdClient,
    private readonly config: AlpineConfig,
  ) {}

  async export(
    manifest: CheckpointManifest,
    opts: Parameters<CheckpointExporter["export"]>[1],
  ): Promise<WorkExport> {
    const spec = {
      sandbox_id: `${manifest.sandbox_id}_x${crypto.randomUUID().slice(0, 8)}`,
      name: "export",
      image: "export",
      config: this.config,
      // An export runs no agent: the short-lived runtime gets no model credentials.
      auth: {},
    };
    let handle: RuntimeHandle = await this.provider.create(spec);
    try {
      handle = await this.provider.start(handle, spec);
      const endpoint = await this.provider.endpoint(handle);
      if (!endpoint) throw new AlpineError("agent_start_failed", "the export runtime did not start");
      const client = this.connect(endpoint);
      for (const link of opts.chain ?? []) {
        await client.putRestoreArtifact(
          chainLinkArtifactName(link.checkpoint_id),
          await this.store.getArtifact(link.sandbox_id, link.checkpoint_id, "workspace.bundle"),
        );
      }
      for (const artifact of manifest.artifacts) {
        await client.putRestoreArtifact(
          artifact.name,
          await this.store.getArtifact(manifest.sandbox_id, manifest.checkpoint_id, artifact.name),
        );
      }
      await client.restore({
        manifest,
        repo: opts.repo,
        branch: manifest.branch,
        ...(opts.chain?.length ? { chain: opts.chain } : {}),
        ...(opts.credentials ? { credentials: opts.credentials } : {}),
      });
      const work = await client.export({
        branch: opts.branch,
        message: opts.message,
        author: opts.author,
        push: opts.push,
        credentials: opts.credentials,
      });
      if (opts.patch) return { ...work, patch: (await client.diff({ stat: false })).patch ?? "" };
      return work;
    } finally {
      await this.provider.destroy(handle).catch((err: unknown) => {
        // The export's answer stands; a runtime left behind only costs until its inactivity timeout.
        console.warn("alpine: removing the export runtime failed", { error: String(err) });
      });
    }
  }
}
