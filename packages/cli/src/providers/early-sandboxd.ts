import type { ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";

/** What bin/early-sandboxd.js leaves for the local provider. */
interface EarlySandboxd {
  entry: string;
  child: ChildProcessByStdio<Writable, Readable, null>;
}

const KEY = Symbol.for("alpine.early-sandboxd");

/**
 * The sandboxd `bin/early-sandboxd.js` started before the CLI loaded, if there is one, it runs
 * `entry` and is still alive: taken once (a second sandbox of the same command spawns its own),
 * and made to keep this process alive again like a child spawned here.
 */
export function takeEarlySandboxd(entry: string): EarlySandboxd["child"] | null {
  const slot = globalThis as { [KEY]?: EarlySandboxd };
  const early = slot[KEY];
  delete slot[KEY];
  if (!early) return null;
  const { child } = early;
  if (early.entry !== entry || child.exitCode !== null || child.signalCode !== null || !child.pid) {
    child.kill("SIGKILL");
    return null;
  }
  child.ref();
  (child.stdin as Writable & { ref?: () => void }).ref?.();
  (child.stdout as Readable & { ref?: () => void }).ref?.();
  return child;
}

/** Stops an early sandboxd nothing adopted (another provider, a warm runtime, a refused launch). */
export function releaseEarlySandboxd(): void {
  const slot = globalThis as { [KEY]?: EarlySandboxd };
  slot[KEY]?.child.kill("SIGKILL");
  delete slot[KEY];
}
