import { join } from "node:path";

/**
 * Where the local checkpoint store ($ALPINE_HOME/checkpoints) keeps an artifact's bytes: named by
 * its sha256 under the sandbox's objects/ (see LocalCheckpointStore). Its own module, so the local
 * provider can name a stored file without loading the store.
 */
export function checkpointObjectPath(root: string, sandboxId: string, sha256: string): string {
  return join(root, sandboxId, "objects", sha256);
}
