import type { PipeCredentials, PipeTarget } from "@alpine/core/git-credential-pipe";

/**
 * Git credentials for one command (a clone, fetch or push). They reach git
 * over a pipe to that command only (core/src/git-credential-pipe.ts): never
 * argv, env, config, URL or disk.
 */
export type GitCredentials = PipeCredentials;

/** Where credentials may be used: git's `protocol` and `host` (host[:port]) attributes. */
export type CredentialTarget = PipeTarget;
