/**
 * What a sandbox's agent can see of the host: the rule for local sandboxes
 * under bubblewrap (sandboxd's bwrap.ts builds the mounts from it) and the
 * words `launch`, `status` and `doctor` use. Data only, like all of core.
 */

/**
 * The system's runtime dirs, read-only. Not /opt, /srv, /var, /run, /home,
 * /root, /mnt, /media: they hold other software's state and users' files
 * (and /run the Docker socket); a tool that lives there is shown on its own.
 */
export const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"] as const;

/**
 * Entries of /etc that hold credentials or keys, hidden although /etc is
 * visible: password hashes, sudo rules, the host's SSH and TLS private keys,
 * Kerberos keytabs, saved network passwords (Wi-Fi, VPN, PPP), the Docker
 * daemon's and containerd's configs (registry auth, TLS keys), systemd's
 * credential store, and system-wide npm/pip configs (they may hold registry
 * tokens; a registry mirror reaches the agent through npm_config_registry and
 * the proxy variables instead). Most are unreadable to a normal user anyway;
 * alpine run as root would let the agent read them all.
 */
export const ETC_SECRETS = [
  "/etc/shadow",
  "/etc/shadow-",
  "/etc/gshadow",
  "/etc/gshadow-",
  "/etc/security/opasswd",
  "/etc/sudoers",
  "/etc/sudoers.d",
  "/etc/ssh/ssh_host_rsa_key",
  "/etc/ssh/ssh_host_ecdsa_key",
  "/etc/ssh/ssh_host_ed25519_key",
  "/etc/ssh/ssh_host_dsa_key",
  "/etc/ssl/private",
  "/etc/krb5.keytab",
  "/etc/NetworkManager/system-connections",
  "/etc/wpa_supplicant",
  "/etc/ppp/chap-secrets",
  "/etc/ppp/pap-secrets",
  "/etc/ipsec.secrets",
  "/etc/ipsec.d/private",
  "/etc/wireguard",
  "/etc/openvpn",
  "/etc/docker",
  "/etc/containerd",
  "/etc/credstore",
  "/etc/credstore.encrypted",
  "/etc/letsencrypt",
  "/etc/libvirt/secrets",
  "/etc/npmrc",
  "/etc/pip.conf",
] as const;

/** Said on every launch of an unconfined local sandbox, and by `status`. */
export const NO_ISOLATION_WARNING =
  "NOT ISOLATED (no bubblewrap): the agent runs as you and can read and write every file you can — " +
  "your home, SSH keys, git and cloud tokens, other sandboxes, alpine's state — and reach every address you can";

/** The agent's view in a status: what bounds it, what it reads and writes. */
export interface ConfinementView {
  boundary: "bubblewrap" | "container" | "none";
  /** Host paths it can read (read-only), when known; null for a container (only its image). */
  read_only: string[] | null;
  read_write: string[] | null;
  warning: string | null;
}

/** What sandboxd reports about its OpenCode's mounts (sandboxd-api's StatusResponse.confinement). */
export interface ReportedConfinement {
  isolation: "bubblewrap" | "none";
  read_only: string[];
  read_write: string[];
}

/**
 * A status's confinement: a container provider's agent sees its image and
 * volume; a local one what its sandboxd reports (null before it answered).
 */
export function confinementView(
  boundary: "bubblewrap or none" | "container",
  reported: ReportedConfinement | undefined,
): ConfinementView | null {
  if (boundary === "container")
    return { boundary: "container", read_only: null, read_write: null, warning: null };
  if (!reported) return null;
  if (reported.isolation === "none")
    return { boundary: "none", read_only: null, read_write: null, warning: NO_ISOLATION_WARNING };
  return {
    boundary: "bubblewrap",
    read_only: reported.read_only,
    read_write: reported.read_write,
    warning: null,
  };
}
