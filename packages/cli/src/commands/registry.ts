/**
 * Every verb of the CLI, in the order `alpine --help` lists them. A new verb is
 * one declaration file in this folder (define.ts) plus its import and its entry
 * here. Importing this module loads declarations only: no handler, no zod.
 */
import auth from "./auth.ts";
import checkpoint from "./checkpoint.ts";
import cloud from "./cloud.ts";
import config from "./config.ts";
import dashboard from "./dashboard.ts";
import type { RegistryEntry } from "./define.ts";
import diff from "./diff.ts";
import doctor from "./doctor.ts";
import env from "./env.ts";
import exportCommand from "./export.ts";
import gc from "./gc.ts";
import image from "./image.ts";
import launch from "./launch.ts";
import list from "./list.ts";
import login from "./login.ts";
import logout from "./logout.ts";
import logs from "./logs.ts";
import open from "./open.ts";
import secrets from "./secrets.ts";
import sessions from "./sessions.ts";
import status from "./status.ts";
import task from "./task.ts";
import teardown from "./teardown.ts";
import version from "./version.ts";
import wait from "./wait.ts";

export const REGISTRY: readonly RegistryEntry[] = [
  launch,
  list,
  status,
  open,
  task,
  wait,
  diff,
  exportCommand,
  checkpoint,
  teardown,
  logs,
  dashboard,
  gc,
  env,
  auth,
  // identity: signing in to the Cloudflare control plane
  login,
  logout,
  sessions,
  secrets,
  config,
  doctor,
  image,
  cloud,
  version,
];
