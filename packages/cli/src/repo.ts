import { existsSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { AlpineError } from "@alpine/core";

const MAX_REPO_LENGTH = 2048;
const ALLOWED_PROTOCOLS = new Set(["https:", "http:", "ssh:", "git:", "file:"]);

/**
 * Turns `--repo` into what a sandbox clones: a URL, or an absolute path of a
 * local repository. Refuses anything git could read as an option or a
 * transport helper before any process runs.
 */
export function resolveRepo(input: string, cwd = process.cwd()): string {
  const fail = (why: string) =>
    new AlpineError("repo_resolution_failed", `cannot use '${input.slice(0, 200)}' as a repository: ${why}`, {
      repo: input.slice(0, 200),
    });
  if (!input || input.trim() !== input) throw fail("it is empty or has surrounding spaces");
  if (input.length > MAX_REPO_LENGTH) throw fail(`it is longer than ${MAX_REPO_LENGTH} characters`);
  if (input.startsWith("-")) throw fail("it starts with '-' (git would read it as an option)");
  if (/[\u0000-\u001f\u007f]/.test(input)) throw fail("it contains control characters");
  if (/^[a-z][a-z0-9+.-]*::/i.test(input)) throw fail("transport helpers like 'ext::' are not allowed");

  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) {
    let url: URL;
    try {
      url = new URL(input);
    } catch {
      throw fail("it is not a valid URL");
    }
    if (!ALLOWED_PROTOCOLS.has(url.protocol)) throw fail(`protocol ${url.protocol} is not supported`);
    if (url.username || url.password) {
      throw fail("credentials in the URL are not allowed; alpine takes them from git's credential helpers");
    }
    // git would pass a host like "-oProxyCommand=…" to ssh as an option.
    if (url.hostname.startsWith("-")) throw fail("its host starts with '-'");
    if (url.protocol === "file:") return localRepo(decodeURIComponent(url.pathname), fail);
    if (/[\s;|&$`<>]/.test(input)) throw fail("it contains shell metacharacters");
    return url.toString().replace(/\/$/, "");
  }
  // scp-like ssh syntax: user@host:path. A host starting with '-' would reach ssh as an option.
  if (/^[A-Za-z0-9._-]+@-/.test(input)) throw fail("its host starts with '-'");
  if (/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/]/.test(input) && !input.includes("\\")) {
    if (/[\s;|&$`<>]/.test(input)) throw fail("it contains shell metacharacters");
    return input;
  }
  return localRepo(isAbsolute(input) ? input : resolve(cwd, input), fail);
}

function localRepo(path: string, fail: (why: string) => AlpineError): string {
  if (!existsSync(path)) throw fail(`no such directory ${path}`);
  if (!statSync(path).isDirectory()) throw fail(`${path} is not a directory`);
  const isWorkTree = existsSync(join(path, ".git"));
  const isBare = existsSync(join(path, "HEAD")) && existsSync(join(path, "objects"));
  if (!isWorkTree && !isBare) throw fail(`${path} is not a git repository`);
  return path;
}
