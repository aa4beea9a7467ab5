import { durabilitySuite } from "./suites/durability.ts";

durabilitySuite("docker");
