/**
 * Whether a process's command line (from /proc/<pid>/cmdline, NUL- or space-joined) is a
 * sandboxd: `node …/sandboxd.js`. A substring test is not enough: bubblewrap's own command
 * line names sandboxd's bundle among the paths it mounts, and it runs as two processes.
 */
export function isSandboxdCommand(cmdline: string): boolean {
  const argv = cmdline.split(/[\0 ]/).filter(Boolean);
  return /(^|\/)node$/.test(argv[0] ?? "") && /(^|\/)sandboxd\.js$/.test(argv[1] ?? "");
}
