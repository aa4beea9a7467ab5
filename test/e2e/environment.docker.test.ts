import { environmentSuite } from "./suites/environment.ts";

environmentSuite("docker");
