import { hostileSuite } from "./suites/hostile.ts";

hostileSuite("local");
