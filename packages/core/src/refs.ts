import { AlpineError } from "./errors.ts";

/**
 * git's rules for a branch name (git-check-ref-format --branch), checked
 * before anything runs so a bad --branch never reaches git or a remote.
 * Only names under refs/heads are accepted: "refs/…" and "HEAD" are refused.
 */
export function validateBranchName(branch: string): string {
  const fail = (why: string) =>
    new AlpineError("branch_invalid", `'${branch.slice(0, 100)}' is not a usable branch name: ${why}`, {
      branch: branch.slice(0, 100),
    });
  if (branch.length === 0) throw fail("it is empty");
  if (branch.length > 200) throw fail("it is longer than 200 characters");
  if (branch.startsWith("-")) throw fail("it starts with '-'");
  if (branch.startsWith("refs/") || branch === "HEAD" || branch === "@")
    throw fail("it names a ref outside refs/heads");
  if (/[\u0000-\u0020\u007f~^:?*[\\]/.test(branch))
    throw fail("it contains a space, a control character or one of ~^:?*[\\");
  if (branch.includes("..")) throw fail("it contains '..'");
  if (branch.includes("@{")) throw fail("it contains '@{'");
  if (branch.includes("//") || branch.startsWith("/") || branch.endsWith("/"))
    throw fail("it has an empty path component");
  if (branch.endsWith(".")) throw fail("it ends with '.'");
  for (const part of branch.split("/")) {
    if (part.startsWith(".")) throw fail("a component starts with '.'");
    if (part.endsWith(".lock")) throw fail("a component ends with '.lock'");
  }
  return branch;
}

/**
 * `--ref`: any revision git can resolve (branch, tag, commit, `refs/…`), but never an option,
 * whitespace or a control character, and not absurdly long — checked before anything runs.
 */
export function validateRef(ref: string): string {
  const shown = ref.slice(0, 100).replace(/[\u0000-\u001f\u007f]/g, "?");
  const fail = (why: string) =>
    new AlpineError("ref_not_found", `'${shown}' is not a usable ref: ${why}`, { ref: shown });
  if (ref.length === 0) throw fail("it is empty");
  if (ref.length > 255) throw fail("it is longer than 255 characters");
  if (ref.startsWith("-")) throw fail("it starts with '-' (git would read it as an option)");
  if (/[\u0000-\u0020\u007f]/.test(ref)) throw fail("it contains a space or a control character");
  return ref;
}
