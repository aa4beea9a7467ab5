import { signalsSuite } from "./suites/signals.ts";

signalsSuite("local");
