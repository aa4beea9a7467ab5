import { signalsSuite } from "./suites/signals.ts";

signalsSuite("docker");
