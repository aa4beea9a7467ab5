import type { AlpineConfig } from "../../config.ts";
import { AlpineError } from "../../errors.ts";
import type { SandboxState } from "../../lifecycle.ts";

/** Which sandboxes an export may read, and from where (docs/durability.md, "Export"). */

/** saving and tearing_down change what there is to export: a retry once they settle is right. */
export function exportRetryable(state: SandboxState): boolean {
  return state === "saving" || state === "tearing_down";
}

function retryLater(name: string, state: SandboxState): AlpineError {
  return new AlpineError("export_retryable_state", `sandbox '${name}' is ${state}; retry when it settles`, {
    state,
  });
}

/**
 * Checked before taking the lease: a sandbox being saved or torn down by a live operation is
 * refused at once (a dead operation's state is settled once the export holds the lease).
 */
export function exportPrecheck(name: string, state: SandboxState, leaseActive: boolean): void {
  if (exportRetryable(state) && leaseActive) throw retryLater(name, state);
}

/**
 * Checked holding the lease: the live workspace of a running or completed sandbox, or the latest
 * verified checkpoint of a destroyed one (or of any sandbox when asked to).
 */
export function exportSource(
  name: string,
  state: SandboxState,
  fromCheckpoint: boolean,
): "workspace" | "checkpoint" {
  if (exportRetryable(state)) throw retryLater(name, state);
  if (fromCheckpoint) return "checkpoint";
  if (state === "running" || state === "completed") return "workspace";
  if (state === "destroyed") return "checkpoint";
  throw new AlpineError(
    "export_state_blocked",
    `sandbox '${name}' is ${state}; export works from a running, completed or destroyed sandbox`,
    { state },
  );
}

/** A completed sandbox whose work is now pushed goes at once when there is no retention period. */
export function autoTeardownAfterExport(pushed: boolean, state: SandboxState, config: AlpineConfig): boolean {
  return (
    pushed &&
    state === "completed" &&
    config.sandbox.auto_teardown &&
    config.sandbox.completed_retention_minutes === 0
  );
}

/** An export commit's message: the task's first line, then the files it touched. */
export function exportMessage(task: string | null, name: string, files: string[]): string {
  const subject = task?.trim() ? task.trim() : `Work from alpine sandbox ${name}`;
  const list = files.slice(0, 50).map((f) => `- ${f}`);
  if (files.length > 50) list.push(`- … and ${files.length - 50} more`);
  return [
    subject,
    "",
    `Exported by alpine from sandbox ${name}.`,
    ...(list.length ? ["", "Files changed:", ...list] : []),
  ].join("\n");
}

/** The first line of a prompt, shortened, for records and commit messages. */
export function summarise(prompt: string): string {
  const first = prompt.trim().split("\n")[0] ?? "";
  return first.length > 120 ? `${first.slice(0, 117)}...` : first;
}
