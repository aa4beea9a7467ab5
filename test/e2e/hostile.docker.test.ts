import { hostileSuite } from "./suites/hostile.ts";

hostileSuite("docker");
