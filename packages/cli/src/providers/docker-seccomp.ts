/**
 * The seccomp profile a sandbox container runs under when its image has
 * bubblewrap (label `alpine.isolation=bubblewrap`).
 *
 * Docker's default profile refuses `unshare` and the namespace flags of
 * `clone` to a process without CAP_SYS_ADMIN, so bubblewrap cannot give
 * OpenCode its own network namespace inside the container: the egress proxy
 * would only be advisory and the agent would share sandboxd's view of the
 * volume. This profile allows those (plus `mount`, `umount2` and
 * `pivot_root`, which the kernel permits only inside the new user namespace:
 * the container keeps no capability) and refuses, on every ABI of the
 * machine, the calls Docker's default refuses that a sandbox never needs —
 * kernel modules, kexec, clock and swap changes, keyrings, BPF, perf events,
 * ptrace and cross-process memory access, userfaultfd, io_uring, the new
 * mount API, handle-based opens, `setns`. It is a deny-list over an
 * unprivileged container, not Docker's allow-list: the trade is stated in
 * docs/providers.md ("What the agent can see").
 */
const REFUSED_SYSCALLS = [
  "acct",
  "add_key",
  "bpf",
  "clock_adjtime",
  "clock_adjtime64",
  "clock_settime",
  "clock_settime64",
  "create_module",
  "delete_module",
  "finit_module",
  "fsconfig",
  "fsmount",
  "fsopen",
  "fspick",
  "get_kernel_syms",
  "init_module",
  "io_uring_enter",
  "io_uring_register",
  "io_uring_setup",
  "ioperm",
  "iopl",
  "kcmp",
  "kexec_file_load",
  "kexec_load",
  "keyctl",
  "lookup_dcookie",
  "move_mount",
  "name_to_handle_at",
  "nfsservctl",
  "open_by_handle_at",
  "open_tree",
  "perf_event_open",
  "process_vm_readv",
  "process_vm_writev",
  "ptrace",
  "query_module",
  "quotactl",
  "quotactl_fd",
  "reboot",
  "request_key",
  "setns",
  "settimeofday",
  "stime",
  "swapoff",
  "swapon",
  "_sysctl",
  "sysfs",
  "uselib",
  "userfaultfd",
  "ustat",
  "vm86",
  "vm86old",
] as const;

/** The ABIs a process of this machine's architecture can call the kernel through (a filter must cover each). */
function architectures(arch: string): string[] {
  if (arch === "arm64") return ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"];
  return ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
}

/** The profile as Docker's `--security-opt seccomp=<file>` reads it. */
export function sandboxSeccompProfile(arch: string = process.arch): string {
  return JSON.stringify({
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: architectures(arch),
    syscalls: [{ names: [...REFUSED_SYSCALLS], action: "SCMP_ACT_ERRNO", errnoRet: 1 }],
  });
}

export const REFUSED_SYSCALL_NAMES: readonly string[] = REFUSED_SYSCALLS;
