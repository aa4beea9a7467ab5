/** Walking test directories: what a scan for planted secrets reads. */
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

/** Every regular file under dir (no symlinks followed). */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const name of entries) {
      const p = join(d, name);
      // lstat: a symlink (say, one the agent planted towards a host file) is not followed.
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}
