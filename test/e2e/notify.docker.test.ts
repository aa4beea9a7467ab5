import { notifySuite } from "./suites/notify.ts";

notifySuite("docker");
